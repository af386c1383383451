#!/usr/bin/env bash
# test_cluster.sh BUILD_DIR - scripts/cluster end to end, in a temp dir on
# free ports: up (everything healthy), status, up again (no second copy),
# down (every process it started is gone), status (reports them stopped).
# Exits 77 (skipped) if spy_server or chunktool are not built.
set -euo pipefail

build=$(cd "${1:?usage: test_cluster.sh BUILD_DIR}" && pwd)
repo=$(cd "$(dirname "$0")/../.." && pwd)
cluster="$repo/scripts/cluster"
for b in chunkmaster/chunkmaster chunkserver/spy_server chunkserver/chunktool; do
  [ -x "$build/$b" ] || { echo "SKIP: $build/$b is not built"; exit 77; }
done

dir=$(mktemp -d /tmp/spy-cluster-test-XXXXXX)
cleanup() {
  "$cluster" down --dir="$dir" >/dev/null 2>&1 || true
  rm -rf "$dir"
}
trap cleanup EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }

# running PID: alive and not a zombie waiting for its parent to reap it.
running() {
  local state
  state=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1) || return 1
  [ -n "$state" ] && [ "$state" != Z ]
}

# port_free PORT: nothing listens on 127.0.0.1:PORT.
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# free_block N: the first of N consecutive free ports, from a random start.
free_block() {
  local base i
  for _ in $(seq 1 50); do
    base=$((10000 + RANDOM % 22000))
    for ((i = 0; i < $1; i++)); do port_free $((base + i)) || continue 2; done
    echo "$base"
    return 0
  done
  fail "no block of $1 free ports"
}

base=$(free_block 8)
flags=(--dir="$dir" --build="$build" --db_port="$base" --master_port=$((base + 1))
  --first_chunkserver_port=$((base + 2)) --registry_port=$((base + 7)) --chunk_size=8M
  --report_interval=1 --timeout=30)

echo "== up"
out=$("$cluster" up "${flags[@]}") || fail "up failed: $out"
echo "$out"
[[ "$out" == *"speedy cluster up in $dir"* ]] || fail "up did not say where the cluster is"
[[ "$out" == *"group 2      spy_server 127.0.0.1:$((base + 4)) 127.0.0.1:$((base + 5))"* ]] ||
  fail "up did not list group 2"

route=$(curl -fsS "http://127.0.0.1:$((base + 1))/v1/chunkmaster/route")
[ "$(grep -o '"State":"RW"' <<<"$route" | wc -l)" -eq 4 ] || fail "route lacks 4 RW servers: $route"
[ "$(grep -o '"GroupWritable":true' <<<"$route" | wc -l)" -eq 4 ] || fail "groups not writable: $route"

echo "== status"
out=$("$cluster" status --dir="$dir") || fail "status says something is stopped: $out"
echo "$out"
[[ "$out" == *"2 of 2 groups writable, 4 servers RW"* ]] || fail "status lacks the health line"

pids_before=$(cat "$dir"/master/chunkmaster.pid "$dir"/cs-*/spy_server.pid "$dir"/mariadb/mariadb.pid)

echo "== up again"
out=$("$cluster" up "${flags[@]}") || fail "second up failed: $out"
[[ "$out" == *"chunkmaster already running"* ]] || fail "second up did not notice the master"
pids_after=$(cat "$dir"/master/chunkmaster.pid "$dir"/cs-*/spy_server.pid "$dir"/mariadb/mariadb.pid)
[ "$pids_before" = "$pids_after" ] || fail "second up replaced processes"
n=$(pgrep -fc -- "--data_dir=$dir/cs-") || true
[ "$n" -eq 4 ] || fail "expected 4 spy_servers for $dir, found $n"
n=$(pgrep -fc -- "-p=$((base + 1)) -dh=127.0.0.1") || true
[ "$n" -eq 1 ] || fail "expected 1 chunkmaster, found $n"

echo "== up with other settings is refused"
if "$cluster" up "${flags[@]}" --groups=3 >/dev/null 2>&1; then fail "up with --groups=3 was accepted"; fi

echo "== down"
"$cluster" down --dir="$dir" || fail "down failed"
for pid in $pids_before; do
  if running "$pid"; then fail "pid $pid still runs after down"; fi
done

echo "== status after down"
if out=$("$cluster" status --dir="$dir"); then fail "status says all runs after down: $out"; fi
[[ "$out" == *"STOPPED"* ]] || fail "status does not show stopped parts: $out"
echo "cluster test passed"
