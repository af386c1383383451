#!/usr/bin/env python3
"""speedy's OCI distribution-spec v1.1.1 conformance suite.

    python3 conformance/run.py --url http://127.0.0.1:5000 [--only X] [--big]

Prints one line per check and ends with `N passed, N failed, N skipped`;
exits 1 if any check failed, 2 on a usage error. See docs/conformance.md."""

import argparse
import os
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from ocisuite import runner  # noqa: E402
from ocisuite import (  # noqa: E402,F401 - each module registers its checks
    deviations,
    t_base,
    t_blobs,
    t_uploads,
    t_manifests,
    t_referrers,
    t_tags,
    t_errors,
    t_keepalive,
    t_concurrency,
    t_big,
)


def parse_args(argv):
    """The command line."""
    p = argparse.ArgumentParser(
        description="OCI distribution-spec v1.1.1 conformance checks against a registry."
    )
    p.add_argument(
        "--url",
        default=os.environ.get("SPY_REGISTRY_URL", "http://127.0.0.1:5000"),
        help="registry root URL (default $SPY_REGISTRY_URL or http://127.0.0.1:5000)",
    )
    p.add_argument(
        "--peer-url",
        default="",
        help="a second front end of the same registry (uploads.resume-other-server)",
    )
    p.add_argument(
        "--only",
        default="",
        help="comma-separated check names, area prefixes or globs (blobs,uploads.patch,*range*)",
    )
    p.add_argument(
        "--big",
        action="store_true",
        help="also run the big-blob check (a streamed 1 GiB upload and download)",
    )
    p.add_argument(
        "--big-size",
        type=int,
        default=1024,
        metavar="MIB",
        help="size of the big blob in MiB (default 1024)",
    )
    p.add_argument(
        "--slow-seconds",
        type=float,
        default=40.0,
        metavar="S",
        help="how long big.slow-patch trickles its body (default 40, over common request timeouts)",
    )
    p.add_argument(
        "--reference",
        action="store_true",
        help="the target is the reference registry: its known deviations are not failures",
    )
    p.add_argument(
        "--namespace",
        default="conformance",
        help="repository prefix; each run adds a random component",
    )
    p.add_argument(
        "--timeout", type=float, default=120.0, help="socket timeout in seconds (an idle timeout)"
    )
    p.add_argument("--insecure", action="store_true", help="do not verify TLS certificates")
    p.add_argument("--list", action="store_true", help="list the checks and exit")
    p.add_argument(
        "-v", "--verbose", action="store_true", help="print every HTTP exchange to stderr"
    )
    args = p.parse_args(argv)
    if args.big_size < 1:
        p.error("--big-size must be at least 1")
    return args


def main(argv):
    args = parse_args(argv)
    checks = runner.select(runner.CHECKS, args.only)
    if not checks:
        print("run.py: no check matches --only=%s (see --list)" % args.only, file=sys.stderr)
        return 2
    if args.list:
        for c in checks:
            print("%-40s %s%s" % (c.name, c.doc, " [--big]" if c.big else ""))
        return 0
    ctx = runner.Context(args)
    print(
        "# %d checks against %s, namespace %s%s"
        % (len(checks), args.url, ctx.namespace, " (reference registry)" if args.reference else "")
    )
    tally = runner.run(ctx, checks, deviations.REFERENCE)
    return 1 if tally.failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
