"""The suite's HTTP client, behaving as registry clients (docker, containerd,
crane) behave on the wire.

- One keep-alive connection per origin (scheme, host, port), reused for every
  request, as http.client does. Response.sock_id is the local address of the
  connection a response arrived on, so keep-alive checks can prove reuse.
- Location headers are resolved against the request URL (RFC 9110 section
  10.2.2), so relative and absolute Locations both work, and an upload that
  moves to another origin follows it.
- Request bodies are bytes (sent with Content-Length) or an iterable of bytes
  (sent with Transfer-Encoding: chunked, never held in memory).
- Responses are read whole, or streamed (stream=True) through iter_body().

Not thread-safe: each thread makes its own Client.
"""

import http.client
import socket
import ssl
import sys
import urllib.parse


def _sock_name(conn):
    """The local (address, port) of a connection's socket: a new connection
    always has another one, unlike id() of a recycled socket object."""
    if conn is None or conn.sock is None:
        return None
    return conn.sock.getsockname()


class ProtocolError(Exception):
    """The response breaks HTTP framing (a body shorter than its
    Content-Length, a chunked body cut short)."""


class Response:
    """One HTTP exchange: the request as sent and the response as received.

    body is the whole body (bytes), or None for a streamed response until it
    is consumed through iter_body()."""

    def __init__(self, method, url, req_headers, raw, sock_id):
        self.method = method
        self.url = url
        self.req_headers = req_headers
        self.status = raw.status
        self.reason = raw.reason
        self.headers = raw.headers
        self.will_close = raw.will_close
        self.sock_id = sock_id
        self.body = None
        self._raw = raw

    def header(self, name, default=None):
        """The value of header 'name' (case-insensitive), or default."""
        return self.headers.get(name, default)

    def header_all(self, name):
        """Every value of header 'name', in order."""
        return self.headers.get_all(name) or []

    def iter_body(self, piece=1 << 20):
        """Yields a streamed body in pieces of at most 'piece' bytes."""
        while True:
            try:
                data = self._raw.read(piece)
            except http.client.IncompleteRead as e:
                raise ProtocolError(
                    "%s: body cut short (%s more bytes announced)" % (self.describe(), e.expected)
                )
            if not data:
                break
            yield data
        self._raw = None

    def read_all(self):
        """Reads the rest of a streamed body into self.body. Raises
        ProtocolError if the body ends before its framing says."""
        if self._raw is not None:
            raw, self._raw = self._raw, None
            try:
                self.body = raw.read()
            except http.client.IncompleteRead as e:
                raw.close()
                raise ProtocolError(
                    "%s: %d %s: body ended after %d bytes, %s more were announced"
                    % (self.describe(), self.status, self.reason, len(e.partial), e.expected)
                )
        return self.body

    def json(self):
        """The body parsed as JSON (raises ValueError if it is not)."""
        import json

        return json.loads(self.body.decode("utf-8"))

    def describe(self):
        """'METHOD path' for failure messages."""
        parts = urllib.parse.urlsplit(self.url)
        path = parts.path + ("?" + parts.query if parts.query else "")
        return "%s %s" % (self.method, path)


class Client:
    """A registry client rooted at base_url ("http://127.0.0.1:5000")."""

    def __init__(self, base_url, timeout=60.0, insecure=False, log=None):
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.insecure = insecure
        self.log = log
        self._conns = {}

    def url(self, path):
        """The absolute URL of a path ("/v2/...") on the registry."""
        return self.base_url + path

    def resolve(self, resp, location):
        """Resolves a Location header value against the request that gave it."""
        return urllib.parse.urljoin(resp.url, location)

    def close(self):
        """Closes every connection."""
        for conn in self._conns.values():
            conn.close()
        self._conns.clear()

    def sock_id(self, url=None):
        """The local address of the connection open to url's origin (None if none)."""
        return _sock_name(self._conns.get(self._origin(url or self.base_url)))

    def request(self, method, url, headers=None, body=None, stream=False):
        """Sends one request and returns its Response.

        url is absolute or a path on the registry. body is None, bytes, or an
        iterable of bytes (chunked). With stream=False the body is read
        whole; with stream=True the caller must consume it (iter_body or
        read_all) before the next request on this client. A request with a
        replayable body that fails on a reused idle connection is retried once
        on a new one, as http.client users do."""
        if url.startswith("/"):
            url = self.url(url)
        headers = dict(headers or {})
        origin = self._origin(url)
        parts = urllib.parse.urlsplit(url)
        target = parts.path + ("?" + parts.query if parts.query else "")
        replayable = body is None or isinstance(body, (bytes, bytearray))
        for attempt in (0, 1):
            conn, reused = self._conn(origin)
            name = _sock_name(conn)
            try:
                conn.request(method, target, body=body, headers=headers)
                raw = conn.getresponse()
                break
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                conn.close()
                if attempt or not reused or not replayable:
                    raise
        resp = Response(method, url, headers, raw, name)
        if not stream:
            resp.read_all()
        self._log(resp)
        return resp

    def _origin(self, url):
        parts = urllib.parse.urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        return (parts.scheme, parts.hostname, port)

    def _conn(self, origin):
        """The origin's connection and whether it was used before."""
        conn = self._conns.get(origin)
        if conn is not None and conn.sock is not None:
            return conn, True
        scheme, host, port = origin
        if scheme == "https":
            ctx = ssl._create_unverified_context() if self.insecure else None
            conn = http.client.HTTPSConnection(host, port, timeout=self.timeout, context=ctx)
        else:
            conn = http.client.HTTPConnection(host, port, timeout=self.timeout)
        conn.connect()
        conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._conns[origin] = conn
        return conn, False

    def _log(self, resp):
        """With --verbose, prints the exchange to stderr."""
        if not self.log:
            return
        out = ["> %s" % resp.describe()]
        out += ["> %s: %s" % kv for kv in resp.req_headers.items()]
        out.append("< %d %s" % (resp.status, resp.reason))
        out += ["< %s: %s" % kv for kv in resp.headers.items()]
        if resp.body:
            text = resp.body[:300]
            out.append("< " + text.decode("utf-8", "replace").replace("\n", " "))
        print("\n".join(out), file=sys.stderr)
