#!/usr/bin/env bash
# conformance/cluster-conformance.sh - both conformance suites against a
# private speedy cluster: starts scripts/cluster on free loopback ports in a
# temp dir (chunks big enough for the 1 GiB check), runs the suite's own
# tests, conformance/run.py (with --big and a second imageserver as
# --peer-url) and conformance/oci-conformance.sh, then stops everything it
# started and removes the dir.
#
#   conformance/cluster-conformance.sh [--build=DIR] [--no-big] [--keep]
#
#   --build=DIR   where the binaries are, relative to the repository [build]
#   --no-big      skip the big checks (1 GiB upload, 40 s trickle)
#   --keep        leave the cluster running and its dir in place
#
# Exit 0 when every suite passed, 1 otherwise.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
build=build big=--big keep=0
for arg in "$@"; do
  case "$arg" in
    --build=*) build=${arg#*=} ;;
    --no-big) big="" ;;
    --keep) keep=1 ;;
    -h|--help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
    *) echo "cluster-conformance: unknown flag '$arg'" >&2; exit 2 ;;
  esac
done
case "$build" in /*) ;; *) build="$repo/$build" ;; esac
[ -x "$build/registry/imageserver" ] || { echo "cluster-conformance: $build/registry/imageserver is missing" >&2; exit 1; }

# A base port with the 12 ports after it free on 127.0.0.1.
base=$(python3 - <<'EOF'
import random, socket
for _ in range(200):
    base = random.randrange(10000, 32000)  # below the ephemeral range (32768-)
    socks = []
    try:
        for p in range(base, base + 12):
            s = socket.socket()
            s.bind(("127.0.0.1", p))
            socks.append(s)
        print(base)
        break
    except OSError:
        pass
    finally:
        for s in socks:
            s.close()
EOF
)
[ -n "$base" ] || { echo "cluster-conformance: no free ports" >&2; exit 1; }
dir=$(mktemp -d /tmp/speedy-conformance.XXXXXX)
reg=$((base + 10)) peer=$((base + 11))
peer_pid=""

# shellcheck disable=SC2317  # called by the EXIT trap
stop() {
  if [ -n "$peer_pid" ]; then
    kill "$peer_pid" 2>/dev/null || true
    wait "$peer_pid" 2>/dev/null || true
  fi
  if [ "$keep" = 1 ]; then
    echo "cluster-conformance: kept the cluster in $dir (scripts/cluster down --dir=$dir)"
  else
    "$repo/scripts/cluster" down --dir="$dir" >/dev/null || true
    rm -rf "$dir"
  fi
}
trap stop EXIT

"$repo/scripts/cluster" up --dir="$dir" --build="$build" --db_port="$base" --master_port=$((base + 1)) \
  --first_chunkserver_port=$((base + 2)) --registry_port="$reg" --chunks=6 --chunk_size=256M

# A second front end on the same database and master: uploads must move between them.
"$build/registry/imageserver" -h=127.0.0.1 -p="$peer" -mh=127.0.0.1 -mp=$((base + 1)) \
  -dh=127.0.0.1 -dp="$base" -n=2 >"$dir/peer-imageserver.log" 2>&1 &
peer_pid=$!
for _ in $(seq 1 100); do
  curl -fsS -o /dev/null "http://127.0.0.1:$peer/v2/" 2>/dev/null && break
  sleep 0.1
done

status=0
echo "== conformance self-test"
python3 "$repo/conformance/selftest/test_suite.py" 2>&1 | tail -3 || status=1
echo "== conformance/run.py"
python3 "$repo/conformance/run.py" --url="http://127.0.0.1:$reg" --peer-url="http://127.0.0.1:$peer" $big || status=1
echo "== official OCI conformance suite v1.1.1"
"$repo/conformance/oci-conformance.sh" --url="http://127.0.0.1:$reg" || status=1
exit $status
