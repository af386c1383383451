"""Pure parsers for what registries send: error bodies, multipart/byteranges,
Link, Content-Range and the upload Range. No I/O; each raises WireError
with a reason a failure message can quote."""

import json
import re


class WireError(Exception):
    """A response part does not have the shape the spec gives it."""


# The spec's fourteen codes (spec.md "Error Codes") and the extra codes
# distribution defines and registries commonly send.
SPEC_CODES = frozenset(
    (
        "BLOB_UNKNOWN BLOB_UPLOAD_INVALID BLOB_UPLOAD_UNKNOWN DIGEST_INVALID "
        "MANIFEST_BLOB_UNKNOWN MANIFEST_INVALID MANIFEST_UNKNOWN NAME_INVALID "
        "NAME_UNKNOWN SIZE_INVALID UNAUTHORIZED DENIED UNSUPPORTED TOOMANYREQUESTS"
    ).split()
)
EXTRA_CODES = frozenset(("RANGE_INVALID", "PAGINATION_NUMBER_INVALID", "TAG_INVALID", "UNKNOWN"))

_CODE_RE = re.compile(r"^[A-Z_]+$")


def parse_errors(body, content_type):
    """Parses an error body {"errors":[{"code","message","detail"?}]}.

    Returns the list of error objects. The Content-Type must be JSON
    (application/json, parameters allowed), the code uppercase letters and
    underscores, the message a string when present."""
    media = (content_type or "").split(";")[0].strip().lower()
    if media != "application/json" and not media.endswith("+json"):
        raise WireError("Content-Type %r is not JSON" % content_type)
    try:
        doc = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise WireError("body is not JSON (%s): %r" % (e, body[:200]))
    if not isinstance(doc, dict) or not isinstance(doc.get("errors"), list) or not doc["errors"]:
        raise WireError('body has no non-empty "errors" array: %r' % body[:200])
    for err in doc["errors"]:
        if not isinstance(err, dict):
            raise WireError("an errors[] entry is not an object: %r" % (err,))
        code = err.get("code")
        if not isinstance(code, str) or not _CODE_RE.match(code):
            raise WireError("errors[].code %r is not [A-Z_]+" % (code,))
        if "message" in err and not isinstance(err["message"], str):
            raise WireError("errors[].message %r is not a string" % (err["message"],))
    return doc["errors"]


def parse_content_range(value):
    """Parses a response Content-Range: "bytes a-b/size" -> (a, b, size),
    "bytes */size" -> (None, None, size)."""
    m = re.match(r"^bytes (\d+)-(\d+)/(\d+)$", (value or "").strip())
    if m:
        a, b, size = (int(x) for x in m.groups())
        if a > b or b >= size:
            raise WireError("Content-Range %r is inconsistent" % value)
        return a, b, size
    m = re.match(r"^bytes \*/(\d+)$", (value or "").strip())
    if m:
        return None, None, int(m.group(1))
    raise WireError("Content-Range %r is not 'bytes a-b/size' or 'bytes */size'" % (value,))


def parse_upload_range(value):
    """Parses an upload Range header "0-<end>" (no "bytes=" prefix, as moby
    parses it with %d-%d) -> (0, end)."""
    m = re.match(r"^(\d+)-(\d+)$", (value or "").strip())
    if not m:
        raise WireError("Range %r is not '<first>-<last>'" % (value,))
    first, last = int(m.group(1)), int(m.group(2))
    if first != 0:
        raise WireError("Range %r does not start at 0" % (value,))
    return first, last


def parse_link(value):
    """Parses a Link header (RFC 8288) into [(target, {param: value})]."""
    links = []
    for m in re.finditer(
        r'<([^>]*)>((?:\s*;\s*[^;,=\s]+\s*(?:=\s*(?:"[^"]*"|[^;,\s]*))?)*)', value or ""
    ):
        params = {}
        for p in re.finditer(r';\s*([^;,=\s]+)\s*(?:=\s*("[^"]*"|[^;,\s]*))?', m.group(2)):
            params[p.group(1).lower()] = (p.group(2) or "").strip('"')
        links.append((m.group(1), params))
    return links


def next_link(value):
    """The target of the rel="next" link in a Link header, or None."""
    for target, params in parse_link(value):
        if "next" in params.get("rel", "").split():
            return target
    return None


def parse_multipart_byteranges(content_type, body):
    """Parses a multipart/byteranges body (RFC 9110 section 14.6, RFC 2046).

    Returns [(headers, data)] in order, headers a dict with lower-case
    names. Raises WireError if the type has no boundary or the framing is
    wrong (missing delimiter, missing close delimiter, part without a blank
    line after its headers)."""
    m = re.match(r"^\s*multipart/byteranges\s*;(.*)$", content_type or "", re.I)
    if not m:
        raise WireError("Content-Type %r is not multipart/byteranges" % (content_type,))
    b = re.search(r'boundary\s*=\s*("([^"]+)"|[^;\s]+)', m.group(1), re.I)
    if not b:
        raise WireError("Content-Type %r has no boundary" % (content_type,))
    boundary = (b.group(2) or b.group(1)).encode("latin-1")
    delim = b"--" + boundary
    # The first delimiter may open the body or follow a preamble and CRLF.
    if body.startswith(delim):
        pos = len(delim)
    else:
        i = body.find(b"\r\n" + delim)
        if i < 0:
            raise WireError("no opening delimiter --%s" % boundary.decode("latin-1"))
        pos = i + 2 + len(delim)
    parts = []
    while True:
        if body[pos : pos + 2] == b"--":
            return _check_parts(parts)
        # Transport padding (spaces, tabs) may follow a delimiter.
        while body[pos : pos + 1] in (b" ", b"\t"):
            pos += 1
        if body[pos : pos + 2] != b"\r\n":
            raise WireError("delimiter not followed by CRLF at byte %d" % pos)
        pos += 2
        end_headers = body.find(b"\r\n\r\n", pos)
        if end_headers < 0:
            raise WireError("part at byte %d has no blank line after its headers" % pos)
        headers = _part_headers(body[pos:end_headers])
        data_start = end_headers + 4
        nxt = body.find(b"\r\n" + delim, data_start)
        if nxt < 0:
            raise WireError("part at byte %d has no closing delimiter" % pos)
        parts.append((headers, body[data_start:nxt]))
        pos = nxt + 2 + len(delim)


def _part_headers(block):
    """Parses the header lines of one body part."""
    headers = {}
    for line in block.split(b"\r\n"):
        if b":" not in line:
            raise WireError("bad part header line %r" % line)
        name, value = line.split(b":", 1)
        headers[name.strip().lower().decode("latin-1")] = value.strip().decode("latin-1")
    return headers


def _check_parts(parts):
    if not parts:
        raise WireError("multipart body has no parts")
    return parts
