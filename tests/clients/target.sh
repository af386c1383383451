# tests/clients/target.sh - the registry under test: our whole cluster
# (scripts/cluster, in the run's temp dir, every port free and random) or the
# CNCF reference registry (docker-registry) for comparison. Sets reg to
# "127.0.0.1:PORT" and target_log to the registry's log. Sourced by run.sh.

target_pid="" target_dir="" target_log=""

# target_start: starts the registry chosen by $against and waits for /v2/.
# Ports are free when chosen, but another test on the machine may bind one
# first: a start that failed on "Address already in use" is retried (up to
# 3 times) on other ports.
target_start() {
  local base attempt
  for attempt in 1 2 3; do
    base=$(free_ports 7) || return 1
    reg="127.0.0.1:$((base + 2))"
    if [ "$against" = reference ]; then
      reference_start "$((base + 2))" && return 0
    else
      cluster_start "$base" && return 0
    fi
    grep -qs 'ddress already in use' "$logs/cluster-up.log" "$target_log" || return 1
    echo "clients: a port was taken (attempt $attempt), starting again on others" >&2
    target_stop
    rm -rf "$tmp/cluster" "$tmp/reference"
  done
  return 1
}

# cluster_start BASE: scripts/cluster up with MariaDB on BASE, the master on
# BASE+1, the registry on BASE+2 and 2 groups x 2 spy_servers on BASE+3..6.
cluster_start() {
  local base=$1
  target_dir="$tmp/cluster"
  target_log="$target_dir/registry/registry.log"
  if ! timeout 120 "$repo_root/scripts/cluster" up --dir="$target_dir" --build="$build" \
    --db_port="$base" --master_port=$((base + 1)) --registry_port=$((base + 2)) \
    --first_chunkserver_port=$((base + 3)) --groups=2 --replicas=2 \
    --chunks=2 --chunk_size=32M --timeout=60 >"$logs/cluster-up.log" 2>&1; then
    cat "$logs/cluster-up.log" >&2
    return 1
  fi
  if [ ! -f "$target_dir/registry/registry.pid" ]; then
    echo "clients: scripts/cluster started no registry: is $build/registry/imageserver built?" >&2
    return 1
  fi
}

# reference_start PORT: docker-registry with filesystem storage in the temp
# dir and deletes enabled, stopped by PID in target_stop.
reference_start() {
  local port=$1
  command -v docker-registry >/dev/null || {
    echo "clients: docker-registry is not installed (Debian package docker-registry)" >&2
    return 1
  }
  target_dir="$tmp/reference"
  target_log="$target_dir/registry.log"
  mkdir -p "$target_dir/data"
  cat >"$target_dir/config.yml" <<EOF
version: 0.1
log:
  level: info
storage:
  filesystem:
    rootdirectory: $target_dir/data
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$port
EOF
  docker-registry serve "$target_dir/config.yml" >"$target_log" 2>&1 &
  target_pid=$!
  wait_for 20 curl -fsS --max-time 2 "http://127.0.0.1:$port/v2/" || {
    tail -5 "$target_log" >&2
    return 1
  }
}

# target_stop: stops what target_start started, and only that.
target_stop() {
  if [ -n "$target_pid" ]; then
    kill -TERM "$target_pid" 2>/dev/null && wait "$target_pid" 2>/dev/null
    target_pid=""
  elif [ "$against" = cluster ] && [ -n "$target_dir" ]; then
    "$repo_root/scripts/cluster" down --dir="$target_dir" >"$logs/cluster-down.log" 2>&1 ||
      cat "$logs/cluster-down.log" >&2
    target_dir=""
  fi
}

# target_log_tail: the end of the registry's log, for a failed run.
target_log_tail() {
  [ -f "$target_log" ] || return 0
  echo "clients: last lines of $target_log:"
  tail -n 40 "$target_log" | cut -c1-400 | sed 's/^/    | /'
}
