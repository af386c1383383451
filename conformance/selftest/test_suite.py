"""Tests of the conformance suite itself (standard library unittest):

- the wire parsers on well-formed and broken inputs;
- the runner's accounting (deviations, a listed check that passes);
- the whole suite against model_registry: every check passes against the
  model, and each fault of the model makes the checks that guard against
  it fail (so no check is a tautology).

    python3 conformance/selftest/test_suite.py      (about 15 s)
"""

import io
import os
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
import types
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

import run  # noqa: E402 - registers every check
from model_registry import ModelRegistry  # noqa: E402
from ocisuite import runner, wire  # noqa: E402


def run_suite(url, only="", extra=()):
    """Runs the suite in-process; returns (tally, {check: outcome word})."""
    args = run.parse_args(["--url", url, "--only", only, "--timeout", "20"] + list(extra))
    ctx = runner.Context(args)
    out = io.StringIO()
    tally = runner.run(ctx, runner.select(runner.CHECKS, only), run.deviations.REFERENCE, out=out)
    outcomes = {}
    for line in out.getvalue().splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] in ("ok", "FAIL", "skip", "deviation"):
            outcomes[parts[1]] = parts[0]
    return tally, outcomes, out.getvalue()


class WireTest(unittest.TestCase):
    def test_errors_accepts_spec_shape(self):
        errs = wire.parse_errors(
            b'{"errors":[{"code":"BLOB_UNKNOWN","message":"x","detail":{}}]}',
            "application/json; charset=utf-8",
        )
        self.assertEqual(errs[0]["code"], "BLOB_UNKNOWN")

    def test_errors_rejects_other_shapes(self):
        bad = [
            (b"not json", "application/json"),
            (b'{"errors":[]}', "application/json"),
            (b'{"errors":[{"code":"lower"}]}', "application/json"),
            (b'{"errors":[{"code":"X","message":7}]}', "application/json"),
            (b'{"errors":[{"code":"X"}]}', "text/plain"),
        ]
        for body, ctype in bad:
            with self.assertRaises(wire.WireError, msg=body):
                wire.parse_errors(body, ctype)

    def test_multipart_round_trip(self):
        body = (
            b"preamble\r\n--B\r\nContent-Type: a/b\r\nContent-Range: bytes 0-1/9\r\n\r\nab\r\n"
            b"--B\r\nContent-Range: bytes 3-8/9\r\n\r\nx--B\r\ny\r\n--B--\r\n"
        )
        parts = wire.parse_multipart_byteranges('multipart/byteranges; boundary="B"', body)
        self.assertEqual([p[1] for p in parts], [b"ab", b"x--B\r\ny"])
        self.assertEqual(parts[0][0]["content-range"], "bytes 0-1/9")

    def test_multipart_rejects_bad_framing(self):
        for ctype, body in [
            ("multipart/byteranges", b"--B\r\n\r\nx\r\n--B--"),
            ("multipart/byteranges; boundary=B", b"--B\r\nContent-Range: bytes 0-0/1\r\n\r\nx"),
            ("multipart/byteranges; boundary=B", b"x"),
            ("application/octet-stream", b"--B--"),
        ]:
            with self.assertRaises(wire.WireError):
                wire.parse_multipart_byteranges(ctype, body)

    def test_link(self):
        self.assertEqual(
            wire.next_link('</v2/a/tags/list?n=2&last=b>; rel="next"'), "/v2/a/tags/list?n=2&last=b"
        )
        self.assertEqual(
            wire.next_link('<http://x/y>; rel=next, <http://x/z>; rel="prev"'), "http://x/y"
        )
        self.assertIsNone(wire.next_link('</v2/a>; rel="prev"'))

    def test_ranges(self):
        self.assertEqual(wire.parse_content_range("bytes 2-5/10"), (2, 5, 10))
        self.assertEqual(wire.parse_content_range("bytes */10"), (None, None, 10))
        self.assertEqual(wire.parse_upload_range("0-99"), (0, 99))
        for bad in ("bytes 5-2/10", "bytes 2-10/10", "2-5/10"):
            with self.assertRaises(wire.WireError):
                wire.parse_content_range(bad)
        for bad in ("bytes=0-99", "1-99", "0 - 99"):
            with self.assertRaises(wire.WireError):
                wire.parse_upload_range(bad)


class RunnerTest(unittest.TestCase):
    def _run(self, func, reference, deviations):
        ctx = types.SimpleNamespace(
            reference=reference, notes=[], args=types.SimpleNamespace(big=False)
        )
        tally = runner.Tally(io.StringIO())
        runner.run_check(ctx, runner.Check("x.y", func, False), tally, deviations)
        return tally

    def test_outcomes(self):
        def failing(ctx):
            raise runner.CheckFailed("no")

        def passing(ctx):
            pass

        listed = {"x.y": "known"}
        t = self._run(failing, True, listed)
        self.assertEqual((t.passed, t.failed, t.skipped, t.deviations), (0, 0, 1, 1))
        t = self._run(passing, True, listed)
        self.assertEqual((t.passed, t.failed), (0, 1), "a listed check that passes must fail")
        t = self._run(failing, False, listed)
        self.assertEqual(t.failed, 1, "deviations apply only with --reference")
        t = self._run(lambda ctx: 1 / 0, False, {})
        self.assertEqual(t.failed, 1, "an exception fails the check")

    def test_select(self):
        names = [c.name for c in runner.select(runner.CHECKS, "uploads.chunked,*range.multi")]
        self.assertIn("uploads.chunked.out-of-order", names)
        self.assertIn("blobs.range.multi", names)
        self.assertNotIn("uploads.chunked-not-a-check", names)
        self.assertTrue(
            all(n.startswith("uploads.chunked") or n == "blobs.range.multi" for n in names)
        )


# fault -> checks that must fail with it on
FAULT_CHECKS = {
    "unsorted-tags": ["tags.list", "tags.n", "tags.link-follow"],
    "no-link": ["tags.n", "tags.link-follow"],
    "no-filters-header": ["referrers.filter", "referrers.filter.no-match"],
    "range-ignored": ["blobs.range.single", "blobs.range.multi", "blobs.range.unsatisfiable"],
    "multipart-reversed": ["blobs.range.multi"],
    "close-after-error": ["keepalive.after-errors"],
    "range-bytes-prefix": ["uploads.start", "uploads.streamed-patch", "uploads.status"],
    "lax-content-range": ["uploads.chunked.out-of-order", "uploads.chunked.first-not-zero"],
    "text-errors": ["blobs.get.unknown", "manifests.unknown", "errors.name-invalid"],
    "no-subject-header": ["manifests.subject.dangling", "referrers.list"],
    "no-manifest-digest": ["manifests.put.tag", "manifests.oci-index"],
    "lost-annotations": ["referrers.list"],
}


class SuiteAgainstModelTest(unittest.TestCase):
    def test_every_check_passes_against_the_model(self):
        with ModelRegistry() as reg:
            extra = ["--big", "--big-size", "3", "--slow-seconds", "1", "--peer-url", reg.url]
            tally, outcomes, text = run_suite(reg.url, extra=extra)
        failed = [n for n, o in outcomes.items() if o == "FAIL"]
        self.assertEqual(failed, [], text)
        self.assertEqual(tally.failed, 0)
        self.assertEqual([n for n, o in outcomes.items() if o == "skip"], ["errors.unauthorized"])
        self.assertEqual(tally.passed, len(runner.CHECKS) - 1)

    def test_each_fault_is_caught(self):
        for fault, checks in sorted(FAULT_CHECKS.items()):
            with self.subTest(fault=fault):
                with ModelRegistry(faults=[fault]) as reg:
                    _, outcomes, text = run_suite(reg.url, only=",".join(checks))
                for name in checks:
                    self.assertEqual(
                        outcomes.get(name), "FAIL", "%s with fault %s:\n%s" % (name, fault, text)
                    )


if __name__ == "__main__":
    unittest.main(verbosity=2)
