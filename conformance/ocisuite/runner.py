"""The check registry, what a check can expect of a response, and the run.

A check is a function of a Context, registered with @check("area.what").
It passes by returning, fails by raising CheckFailed (through the expect_*
helpers, whose messages name the request, what was expected and what came
back), and skips by raising CheckSkipped. Any other exception is a failure
too (an unreachable server, a bug in the check), reported with its type.

Output: one line per check, then `N passed, N failed, N skipped` alone on
the last line. With --reference, a check listed in deviations.REFERENCE that
fails is reported as `deviation` and counted as skipped; one that passes is
a failure (the list must stay exact)."""

import fnmatch
import json
import os
import sys
import threading
import time

from . import http, wire


class CheckFailed(Exception):
    """A check's expectation was not met; the message says which."""


class CheckSkipped(Exception):
    """A check cannot run here (feature off, --big not given, ...)."""


class Check:
    """A registered check: its name, function, whether it is a --big one,
    and its description (the first paragraph of the docstring)."""

    def __init__(self, name, func, big):
        self.name = name
        self.func = func
        self.big = big
        self.doc = " ".join((func.__doc__ or "").strip().split("\n\n")[0].split())


CHECKS = []


def check(name, big=False):
    """Registers a check under 'name' (dotted: area.what). big=True checks
    run only with --big."""

    def register(func):
        if any(c.name == name for c in CHECKS):
            raise ValueError("duplicate check name %s" % name)
        CHECKS.append(Check(name, func, big))
        return func

    return register


# ---- expectations ---------------------------------------------------------

_SHOWN_REQUEST_HEADERS = ("Range", "Content-Range", "Content-Type", "Accept", "If-None-Match")


def where(resp):
    """'METHOD path (interesting request headers)' for a failure message."""
    shown = ["%s: %s" % (k, v) for k, v in resp.req_headers.items() if k in _SHOWN_REQUEST_HEADERS]
    return resp.describe() + (" [%s]" % "; ".join(shown) if shown else "")


def fail(resp, expected, got):
    """Raises CheckFailed: at resp's request, expected X, got Y."""
    raise CheckFailed("%s: expected %s, got %s" % (where(resp), expected, got))


def expect(cond, message):
    """Raises CheckFailed(message) unless cond."""
    if not cond:
        raise CheckFailed(message)


def _body_hint(resp):
    if not resp.body:
        return ""
    text = resp.body[:200].decode("utf-8", "replace").replace("\n", " ")
    return " (body: %s)" % text


def expect_status(resp, *statuses):
    """The response status is one of statuses."""
    if resp.status not in statuses:
        want = " or ".join(str(s) for s in statuses)
        fail(resp, "status " + want, "%d %s%s" % (resp.status, resp.reason, _body_hint(resp)))


def expect_header(resp, name, value=None, check=None, what=None):
    """Header 'name' is present; equal to value if given; check(value) true
    if given (what describes the expectation). Returns its value."""
    got = resp.header(name)
    if got is None:
        fail(
            resp,
            "header %s%s" % (name, ": " + value if value is not None else ""),
            "no such header",
        )
    if value is not None and got != value:
        fail(resp, "%s: %s" % (name, value), "%s: %s" % (name, got))
    if check is not None and not check(got):
        fail(resp, "%s %s" % (name, what or "valid"), "%s: %s" % (name, got))
    return got


def expect_no_header(resp, name):
    """Header 'name' is absent."""
    if resp.header(name) is not None:
        fail(resp, "no %s header" % name, "%s: %s" % (name, resp.header(name)))


def expect_error(resp, statuses, codes):
    """An error response: status in statuses (an int or a tuple), a body of
    the spec's shape {"errors":[{"code","message","detail"?}]} served as
    JSON, whose first code is one of codes (a str or a tuple). HEAD
    responses have no body; only their status is checked. Returns the
    errors list."""
    statuses = (statuses,) if isinstance(statuses, int) else tuple(statuses)
    codes = (codes,) if isinstance(codes, str) else tuple(codes)
    expect_status(resp, *statuses)
    if resp.method == "HEAD":
        return []
    try:
        errors = wire.parse_errors(resp.body or b"", resp.header("Content-Type"))
    except wire.WireError as e:
        fail(resp, "an OCI error body with code %s" % "/".join(codes), str(e))
    got = [e["code"] for e in errors]
    if got[0] not in codes:
        fail(
            resp,
            "error code %s" % " or ".join(codes),
            "%s (body %s)" % (",".join(got), _short(resp.body)),
        )
    return errors


def _short(body):
    return body[:200].decode("utf-8", "replace")


def expect_json(resp):
    """The body parses as JSON; returns it."""
    try:
        return json.loads(resp.body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        fail(resp, "a JSON body", "%s: %r" % (e, resp.body[:200]))


# ---- context and fixtures -------------------------------------------------


class Context:
    """What a check works with: the options, a client, a namespace private to
    this run, and fixtures shared between checks (built once, on first use;
    a fixture that failed fails every check that needs it, with its error)."""

    def __init__(self, args):
        self.args = args
        self.reference = args.reference
        self.run_id = "r" + os.urandom(4).hex()
        self.namespace = "%s/%s" % (args.namespace.strip("/"), self.run_id)
        self.client = self.new_client()
        self.notes = []
        self._fixtures = {}
        self._lock = threading.Lock()

    def new_client(self):
        """A new client (own connections), e.g. for another thread."""
        log = self.args.verbose
        return http.Client(
            self.args.url, timeout=self.args.timeout, insecure=self.args.insecure, log=log
        )

    def note(self, text):
        """A measurement or remark printed under the running check's line."""
        self.notes.append(text)

    def repo(self, name):
        """A repository name inside this run's namespace."""
        return "%s/%s" % (self.namespace, name)

    def fixture(self, name, build):
        """The value of fixture 'name', building it with build(self) once."""
        with self._lock:
            if name not in self._fixtures:
                try:
                    self._fixtures[name] = (True, build(self))
                except (CheckFailed, CheckSkipped) as e:
                    self._fixtures[name] = (False, e)
                except Exception as e:  # noqa: BLE001 - reported as the fixture's failure
                    self._fixtures[name] = (False, CheckFailed("%s: %s" % (type(e).__name__, e)))
            ok, value = self._fixtures[name]
        if ok:
            return value
        if isinstance(value, CheckSkipped):
            raise CheckSkipped(str(value))
        raise CheckFailed("fixture %s failed: %s" % (name, value))


# ---- the run --------------------------------------------------------------


def select(checks, only):
    """The checks whose name matches one of the comma-separated patterns in
    only: a prefix at a dot boundary ("uploads", "uploads.patch") or a
    glob ("*range*"). Everything when only is empty."""
    if not only:
        return list(checks)
    pats = [p.strip() for p in only.split(",") if p.strip()]

    def match(name):
        for p in pats:
            if name == p or name.startswith(p + ".") or fnmatch.fnmatchcase(name, p):
                return True
        return False

    return [c for c in checks if match(c.name)]


class Tally:
    """Counts outcomes and prints one line per check."""

    def __init__(self, out):
        self.out = out
        self.passed = self.failed = self.skipped = self.deviations = 0

    def line(self, word, name, seconds, detail=""):
        text = "%-9s %s (%.2fs)" % (word, name, seconds)
        if detail:
            text += ": " + " ".join(detail.split())
        print(text, file=self.out, flush=True)


def run_check(ctx, c, tally, deviations):
    """Runs one check and records its outcome."""
    t0 = time.monotonic()
    if c.big and not ctx.args.big:
        tally.skipped += 1
        tally.line("skip", c.name, 0.0, "needs --big")
        return
    outcome, detail = "ok", ""
    ctx.notes.clear()
    try:
        c.func(ctx)
    except CheckSkipped as e:
        outcome, detail = "skip", str(e)
    except CheckFailed as e:
        outcome, detail = "FAIL", str(e)
    except Exception as e:  # noqa: BLE001 - any error fails the check, the run goes on
        outcome, detail = "FAIL", "%s: %s" % (type(e).__name__, e)
    seconds = time.monotonic() - t0
    reason = deviations.get(c.name) if ctx.reference else None
    if reason is not None and outcome == "FAIL":
        outcome, detail = "deviation", "%s [got: %s]" % (reason, detail)
    elif reason is not None and outcome == "ok":
        outcome, detail = "FAIL", "listed as a reference deviation (%s) but passed" % reason
    if outcome == "ok":
        tally.passed += 1
    elif outcome == "FAIL":
        tally.failed += 1
    else:
        tally.skipped += 1
        tally.deviations += outcome == "deviation"
    tally.line(outcome, c.name, seconds, detail)
    for text in ctx.notes:
        print("          note: " + text, file=tally.out, flush=True)


def run(ctx, checks, deviations, out=sys.stdout):
    """Runs checks in order; prints the summary. Returns the Tally."""
    tally = Tally(out)
    for c in checks:
        run_check(ctx, c, tally, deviations)
    ctx.client.close()
    if ctx.reference:
        print(
            "reference deviations: %d (expected on the reference registry, counted as skipped)"
            % tally.deviations,
            file=out,
        )
    print(
        "%d passed, %d failed, %d skipped" % (tally.passed, tally.failed, tally.skipped),
        file=out,
        flush=True,
    )
    return tally
