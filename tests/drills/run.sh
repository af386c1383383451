#!/usr/bin/env bash
# tests/drills/run.sh - the failure drills of issue 5 against a private
# scripts/cluster (random high ports, a temp dir under /tmp).
#
#   tests/drills/run.sh [--build=DIR] [--workers=N] [drill ...]
#
# Drills (default: all, in this order): chunkserver registry chunkmaster
# database fill. Prints PASS/FAIL lines with what each measured, ends with
# "N passed, N failed" and exits non-zero on any failure. Always stops the
# cluster and removes the temp dir, whatever happens.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
build=build
args=()
for arg in "$@"; do
  case "$arg" in
    --build=*) build=${arg#*=} ;;
    -h|--help) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) args+=("$arg") ;;
  esac
done
case "$build" in /*) ;; *) build="$repo/$build" ;; esac

export PYTHONDONTWRITEBYTECODE=1 # no __pycache__ in the source tree
dir=$(mktemp -d /tmp/speedy-drills.XXXXXX)
# shellcheck disable=SC2317 # invoked by the trap
cleanup() {
  "$repo/scripts/cluster" down --dir="$dir" >/dev/null 2>&1 || true
  rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Five minutes at most, whatever hangs. On failure, the end of every log
# (the directory is removed afterwards).
status=0
timeout --kill-after=10 300 python3 "$here/drills.py" --build="$build" --dir="$dir" "${args[@]}" ||
  status=$?
if [ "$status" -ne 0 ]; then
  for f in "$dir"/*/*.log "$dir"/mariadb/mariadb.err; do
    [ -f "$f" ] || continue
    echo "---- ${f#"$dir"/} (last 15 lines)"
    tail -n 15 "$f"
  done
fi
exit "$status"
