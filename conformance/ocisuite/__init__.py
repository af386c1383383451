"""ocisuite - speedy's OCI distribution-spec v1.1.1 conformance suite.

Standard library only. The modules, one concern each:

  http         the HTTP client: keep-alive connections, Location resolution,
               streamed (chunked) request bodies and streamed responses
  wire         pure parsers: error bodies, multipart/byteranges, Link, Range
  content      blobs, digests and manifest documents the checks push
  ops          client flows built on http (push a blob, a manifest, ...)
  runner       the check registry, expectations, deviations and the summary
  deviations   the checks the reference registry is known to fail, and why
  t_*          the checks themselves, one module per area of the spec

run.py (next to this package) is the command line.
"""
