"""Load generator for the failure drills: several clients pushing and pulling
through the registry at once, the way docker does on the wire.

- Blobs are pushed monolithic (POST, then PUT ?digest= with the body) or
  streamed (POST, PATCH with a chunked body, PUT ?digest=). Manifests are OCI
  image manifests over blobs the same worker pushed.
- Every acknowledged push (201) is logged with what regenerates its bytes:
  the seed and size of a blob, the exact text of a manifest.
- A push that fails is retried from scratch (a new upload) with back-off, like
  docker: 1, 2, 4, 8 s. One that fails every attempt is logged as failed.
- Pulls pick an acknowledged blob and check it byte-exact (sha256). A 200
  whose body is complete but wrong is "corrupt", the one thing never allowed.
- Every operation is an event (start, end, kind, ok, detail) so a drill can
  ask what happened in a time window.

Standard library only; every socket has a timeout (no request waits forever).
"""

import hashlib
import http.client
import json
import random
import threading
import time
import urllib.parse

CLIENT_TIMEOUT = 60.0  # seconds; a request this slow counts as hung
RETRY_DELAYS = (1.0, 2.0, 4.0, 8.0)
MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"


def blob_bytes(seed, size):
    """The bytes of a drill blob: a pure function of (seed, size)."""
    return random.Random(seed).randbytes(size)


def sha256_digest(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


class PushFailed(Exception):
    """One push attempt failed (status or connection error)."""


class Registry:
    """A minimal OCI client for one registry at host:port (new connection per
    request: a killed registry never leaves a stale keep-alive behind)."""

    def __init__(self, host, port, timeout=CLIENT_TIMEOUT):
        self.host, self.port, self.timeout = host, port, timeout

    def request(self, method, path, body=None, headers=None):
        """Returns (status, headers, body bytes). Raises OSError or
        http.client exceptions on connection trouble or a short body."""
        conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        try:
            conn.request(method, path, body=body, headers=headers or {},
                         encode_chunked=not isinstance(body, (bytes, type(None))))
            resp = conn.getresponse()
            data = resp.read()
            return resp.status, resp.headers, data
        finally:
            conn.close()

    def _upload_path(self, location, digest):
        parts = urllib.parse.urlsplit(location)
        query = parts.query + ("&" if parts.query else "") + "digest=" + digest
        return parts.path + "?" + query

    def start_upload(self, repo):
        status, headers, _ = self.request("POST", "/v2/%s/blobs/uploads/" % repo)
        if status != 202:
            raise PushFailed("POST upload: %d" % status)
        return headers["Location"]

    def push_blob(self, repo, data, streamed, chunk=64 << 10, pace=None):
        """Pushes one blob; streamed sends a chunked PATCH (pace(sent) is
        called after each chunk, e.g. to slow it down or to notice progress)."""
        digest = sha256_digest(data)
        location = self.start_upload(repo)
        if streamed:
            def body():
                for off in range(0, len(data), chunk):
                    yield data[off:off + chunk]
                    if pace:
                        pace(off + chunk)
            status, headers, _ = self.request(
                "PATCH", path_of(location), body=body(),
                headers={"Content-Type": "application/octet-stream"})
            if status != 202:
                raise PushFailed("PATCH: %d" % status)
            location = headers["Location"]
            status, _, _ = self.request("PUT", self._upload_path(location, digest), body=b"")
        else:
            status, _, _ = self.request(
                "PUT", self._upload_path(location, digest), body=data,
                headers={"Content-Type": "application/octet-stream"})
        if status != 201:
            raise PushFailed("PUT blob: %d" % status)
        return digest

    def push_manifest(self, repo, tag, text):
        status, _, body = self.request("PUT", "/v2/%s/manifests/%s" % (repo, tag),
                                       body=text, headers={"Content-Type": MANIFEST_TYPE})
        if status != 201:
            raise PushFailed("PUT manifest: %d %s" % (status, body[:200]))
        return sha256_digest(text)


class Load:
    """Worker threads pushing and pulling until stop(). Thread-safe logs."""

    def __init__(self, host, port, workers=4, seed_base=0, prefix="drill",
                 big_every=12, pause=0.15, journal=None):
        self.reg = Registry(host, port)
        self.workers, self.seed_base, self.prefix = workers, seed_base, prefix
        self.big_every, self.pause = big_every, pause
        self.lock = threading.Lock()
        self.acked = []     # dicts: kind, repo, digest, size, seed | text
        self.failed = []    # pushes that failed every attempt
        self.events = []    # (t0, t1, op, ok, detail)
        self.corrupt = []   # pulls that got a complete but wrong body
        self._stop = threading.Event()
        self._threads = []
        self._next_seed = seed_base
        # journal: a file path; every acknowledged and every failed push is
        # appended as one JSON line (enough to regenerate and check it).
        self._journal = open(journal, "a") if journal else None

    # -- bookkeeping ---------------------------------------------------------
    def event(self, t0, op, ok, detail=""):
        with self.lock:
            self.events.append((t0, time.time(), op, ok, detail))

    def new_seed(self):
        with self.lock:
            self._next_seed += 1
            return self._next_seed

    def ack(self, entry):
        with self.lock:
            self.acked.append(entry)
            self._write_journal("acked", entry)

    def fail(self, entry):
        with self.lock:
            self.failed.append(entry)
            self._write_journal("failed", entry)

    def _write_journal(self, outcome, entry):
        """Appends one line (called with self.lock held)."""
        if self._journal:
            self._journal.write(json.dumps(dict(entry, outcome=outcome, time=time.time())) + "\n")
            self._journal.flush()

    # -- one push with docker-like retries ------------------------------------
    def push_with_retries(self, op, fn, entry):
        """Runs fn() until it succeeds or RETRY_DELAYS are used up; logs the
        push as acknowledged or failed. Returns True when acknowledged."""
        for attempt in range(len(RETRY_DELAYS) + 1):
            t0 = time.time()
            try:
                fn()
                self.event(t0, op, True, "attempt %d" % (attempt + 1))
                self.ack(entry)
                return True
            except (OSError, http.client.HTTPException, PushFailed, KeyError) as e:
                self.event(t0, op + "_attempt", False, repr(e))
            if attempt == len(RETRY_DELAYS) or self._stop.wait(RETRY_DELAYS[attempt]):
                break
        self.event(time.time(), op, False, "gave up")
        self.fail(entry)
        return False

    def push_one_blob(self, repo, size, streamed):
        seed = self.new_seed()
        data = blob_bytes(seed, size)
        entry = {"kind": "blob", "repo": repo, "digest": sha256_digest(data),
                 "size": size, "seed": seed, "streamed": streamed}
        ok = self.push_with_retries("push", lambda: self.reg.push_blob(repo, data, streamed), entry)
        return entry if ok else None

    def push_one_manifest(self, repo, layers):
        config = self.push_one_blob(repo, 64, False)
        if config is None:
            return
        doc = {"schemaVersion": 2, "mediaType": MANIFEST_TYPE,
               "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                          "digest": config["digest"], "size": config["size"]},
               "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                           "digest": l["digest"], "size": l["size"]} for l in layers]}
        text = json.dumps(doc, sort_keys=True).encode()
        tag = "t%d" % self.new_seed()
        entry = {"kind": "manifest", "repo": repo, "digest": sha256_digest(text),
                 "tag": tag, "text": text.decode()}
        self.push_with_retries("push", lambda: self.reg.push_manifest(repo, tag, text), entry)

    # -- pulls ----------------------------------------------------------------
    def pull_check(self, entry):
        """GET one acknowledged item; returns (ok, detail). A complete body
        with the wrong bytes is recorded as corrupt."""
        kind = "blobs" if entry["kind"] == "blob" else "manifests"
        status, _, body = self.reg.request("GET", "/v2/%s/%s/%s" % (entry["repo"], kind, entry["digest"]))
        if status != 200:
            return False, "status %d" % status
        if sha256_digest(body) != entry["digest"]:
            with self.lock:
                self.corrupt.append((entry, len(body)))
            return False, "CORRUPT body of %d bytes" % len(body)
        return True, ""

    def pull_random(self, rng):
        with self.lock:
            if not self.acked:
                return
            entry = rng.choice(self.acked)
        t0 = time.time()
        try:
            ok, detail = self.pull_check(entry)
        except (OSError, http.client.HTTPException) as e:
            ok, detail = False, repr(e)
        self.event(t0, "pull", ok, detail)

    # -- workers --------------------------------------------------------------
    def worker(self, n):
        rng = random.Random(self.seed_base * 1000 + n)
        repo = "%s/w%d" % (self.prefix, n)
        mine, i = [], 0
        while not self._stop.is_set():
            i += 1
            r = rng.random()
            if r < 0.45 or not mine:
                size = rng.randint((2 << 20) + 1, 3 << 20) if i % self.big_every == 0 else rng.randint(1, 256 << 10)
                entry = self.push_one_blob(repo, size, streamed=rng.random() < 0.5)
                if entry:
                    mine.append(entry)
            elif r < 0.55:
                self.push_one_manifest(repo, rng.sample(mine, min(2, len(mine))))
            else:
                self.pull_random(rng)
            self._stop.wait(self.pause)

    def start(self):
        for n in range(self.workers):
            t = threading.Thread(target=self.worker, args=(n,), daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self):
        """Stops the workers; a push in its retry back-off gives up at once
        (logged as failed), one in flight finishes its request first."""
        self._stop.set()
        for t in self._threads:
            t.join(CLIENT_TIMEOUT * 2)
        self._threads = []
        self._stop = threading.Event()

    # -- reports --------------------------------------------------------------
    def window(self, t_from, t_to):
        """Counts of the events that ended in [t_from, t_to]."""
        with self.lock:
            ev = [e for e in self.events if t_from <= e[1] <= t_to]
        out = {}
        for op in ("push", "push_attempt", "pull"):
            sel = [e for e in ev if e[2] == op]
            out[op + "_ok"] = sum(1 for e in sel if e[3])
            out[op + "_failed"] = sum(1 for e in sel if not e[3])
        out["max_latency"] = max([e[1] - e[0] for e in ev] or [0.0])
        out["push_gap"] = longest_gap([e[1] for e in ev if e[2] == "push" and e[3]], t_from, t_to)
        out["pull_gap"] = longest_gap([e[1] for e in ev if e[2] == "pull" and e[3]], t_from, t_to)
        out["errors"] = sorted({e[4] for e in ev if not e[3]})[:5]
        return out

    def first_ok_after(self, op, t):
        with self.lock:
            ends = [e[1] for e in self.events if e[2] == op and e[3] and e[0] >= t]
        return min(ends) - t if ends else None

    def verify(self):
        """After recovery: every acknowledged push pulls back byte-exact, and
        every failed one is 404 (or, if the registry completed it but the
        answer was lost, byte-exact). Returns (problems, stats)."""
        problems, stats = [], {"acked": len(self.acked), "failed": len(self.failed),
                               "failed_complete": 0, "failed_404": 0}
        for entry in list(self.acked):
            try:
                ok, detail = self.pull_check(entry)
            except (OSError, http.client.HTTPException) as e:  # a short body lands here
                ok, detail = False, repr(e)
            if not ok:
                problems.append("acked %s %s: %s" % (entry["kind"], entry["digest"], detail))
        for entry in list(self.failed):
            kind = "blobs" if entry["kind"] == "blob" else "manifests"
            try:
                status, _, body = self.reg.request("GET", "/v2/%s/%s/%s" % (entry["repo"], kind, entry["digest"]))
            except (OSError, http.client.HTTPException) as e:
                problems.append("failed push %s: %r" % (entry["digest"], e))
                continue
            if status == 404:
                stats["failed_404"] += 1
            elif status == 200 and sha256_digest(body) == entry["digest"]:
                stats["failed_complete"] += 1
            else:
                problems.append("failed push %s visible: status %d, %d bytes" % (entry["digest"], status, len(body)))
        if self.corrupt:
            problems.append("%d corrupt pulls during the drills" % len(self.corrupt))
        return problems, stats


def path_of(location):
    """The path and query of a Location header (absolute or relative)."""
    parts = urllib.parse.urlsplit(location)
    return parts.path + ("?" + parts.query if parts.query else "")


def longest_gap(times, t_from, t_to):
    """The longest stretch of [t_from, t_to] without one of 'times'."""
    points = [t_from] + sorted(times) + [t_to]
    return max(b - a for a, b in zip(points, points[1:]))
