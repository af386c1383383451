#!/usr/bin/env bash
# conformance/oci-conformance.sh - the official OCI distribution-spec
# conformance suite (v1.1.1) against a registry.
#
#   conformance/oci-conformance.sh --url=http://127.0.0.1:5000 [flags]
#
# Flags:
#   --url=URL            registry root (default $OCI_ROOT_URL, else http://127.0.0.1:5000)
#   --namespace=NAME     repository for the run (default oci-conformance/<random>/a)
#   --crossmount=NAME    second repository for mounts (default .../b next to it)
#   --report=DIR         keep junit.xml, report.html and the full log in DIR
#                        (default: a temp dir, removed at exit)
#   --keep               keep the build dir (to rerun DIR/conformance.test)
#
# Builds the Go test binary of github.com/opencontainers/distribution-spec/
# conformance at the commit tagged v1.1.1 (that module has no tag of its
# own; conformance/oci/go.mod and go.sum pin it and every dependency) in a
# temp dir, through the Go module proxy; the Go module and build caches stay
# where Go keeps them, outside the repository. Runs the four workflows
# (pull, push, content discovery, content management) with automatic
# cross-mount on. Any OCI_* variable already set wins over these defaults.
#
# Prints the suite's summary and then "N passed, N failed, N skipped".
# Exit 0 when every spec passed, 1 on a failure, 2 on a usage error. Without
# a Go toolchain it prints a "skipped" line and exits 0.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
module=github.com/opencontainers/distribution-spec/conformance

die() { echo "oci-conformance: $*" >&2; exit "${2:-1}"; }
usage() { sed -n '2,27p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }

url=${OCI_ROOT_URL:-http://127.0.0.1:5000} namespace="" crossmount="" report="" keep=0
for arg in "$@"; do
  case "$arg" in
    --url=*) url=${arg#*=} ;;
    --namespace=*) namespace=${arg#*=} ;;
    --crossmount=*) crossmount=${arg#*=} ;;
    --report=*) report=${arg#*=} ;;
    --keep) keep=1 ;;
    -h|--help) usage ;;
    *) echo "oci-conformance: unknown flag '$arg'" >&2; usage ;;
  esac
done

# ---- the toolchain --------------------------------------------------------
go_bin=""
for candidate in "${GO:-}" "$(command -v go 2>/dev/null || true)" /usr/local/go/bin/go; do
  if [ -n "$candidate" ] && [ -x "$candidate" ]; then go_bin=$candidate; break; fi
done
if [ -z "$go_bin" ]; then
  echo "oci-conformance: skipped: no Go toolchain (looked at \$GO, go in PATH, /usr/local/go/bin/go)"
  echo "0 passed, 0 failed, 1 skipped"
  exit 0
fi

if ! curl -fsS -o /dev/null --max-time 10 "$url/v2/" 2>/dev/null \
  && ! curl -sS -o /dev/null --max-time 10 -w '%{http_code}' "$url/v2/" 2>/dev/null | grep -q '^401$'; then
  die "no registry answers GET $url/v2/ with 200 or 401"
fi

# ---- build ----------------------------------------------------------------
work=$(mktemp -d /tmp/oci-conformance.XXXXXX)
cleanup() {
  if [ "$keep" = 1 ]; then echo "oci-conformance: kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
cp "$here/oci/go.mod" "$here/oci/go.sum" "$work/"
echo "oci-conformance: building $module (v1.1.1) with $("$go_bin" version | cut -d' ' -f3)"
if ! (cd "$work" && GOFLAGS="${GOFLAGS:-} -mod=readonly" "$go_bin" test -c -o conformance.test "$module") \
  >"$work/build.log" 2>&1; then
  tail -20 "$work/build.log" >&2
  die "building the conformance suite failed (log above)"
fi

# ---- run ------------------------------------------------------------------
run_id=$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')
namespace=${namespace:-oci-conformance/r$run_id/a}
crossmount=${crossmount:-${namespace%/*}/b}
keep_report=1
if [ -z "$report" ]; then
  report="$work/report"
  keep_report=0
fi
mkdir -p "$report"
log="$report/conformance.log"

export OCI_ROOT_URL="$url"
export OCI_NAMESPACE="${OCI_NAMESPACE:-$namespace}"
export OCI_CROSSMOUNT_NAMESPACE="${OCI_CROSSMOUNT_NAMESPACE:-$crossmount}"
export OCI_TEST_PULL="${OCI_TEST_PULL:-1}"
export OCI_TEST_PUSH="${OCI_TEST_PUSH:-1}"
export OCI_TEST_CONTENT_DISCOVERY="${OCI_TEST_CONTENT_DISCOVERY:-1}"
export OCI_TEST_CONTENT_MANAGEMENT="${OCI_TEST_CONTENT_MANAGEMENT:-1}"
export OCI_AUTOMATIC_CROSSMOUNT="${OCI_AUTOMATIC_CROSSMOUNT:-1}"
export OCI_DELETE_MANIFEST_BEFORE_BLOBS="${OCI_DELETE_MANIFEST_BEFORE_BLOBS:-1}"
export OCI_HIDE_SKIPPED_WORKFLOWS="${OCI_HIDE_SKIPPED_WORKFLOWS:-0}"
export OCI_REPORT_DIR="$report"

echo "oci-conformance: $OCI_ROOT_URL namespace $OCI_NAMESPACE, cross-mount $OCI_CROSSMOUNT_NAMESPACE"
status=0
(cd "$report" && "$work/conformance.test" -ginkgo.no-color) >"$log" 2>&1 || status=$?

# The suite's own summary: the failures, then "Ran N of M Specs" and the counts.
counts=$(grep -E '(SUCCESS|FAIL)! -- [0-9]+ Passed \| [0-9]+ Failed' "$log" | tail -1 || true)
if [ -z "$counts" ]; then
  tail -20 "$log" >&2
  die "the suite ended without a summary (exit $status; log: $log)"
fi
sed -n '/^Summarizing [0-9]* Failure/,/^Ran [0-9]* of [0-9]* Specs/p' "$log" | sed '$d'
grep -E '^Ran [0-9]+ of [0-9]+ Specs' "$log" | tail -1
echo "$counts"
passed=$(sed -E 's/.* ([0-9]+) Passed.*/\1/' <<<"$counts")
failed=$(sed -E 's/.* ([0-9]+) Failed.*/\1/' <<<"$counts")
skipped=$(sed -E 's/.* ([0-9]+) Skipped.*/\1/' <<<"$counts")
[ "$keep_report" = 0 ] || echo "oci-conformance: report in $report (junit.xml, report.html, conformance.log)"
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ] && [ "$status" -eq 0 ]
