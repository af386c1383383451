# tests/clients/ctr.sh - containerd's ctr: a private containerd (config,
# root, state and socket in the run's temp dir; never the system one)
# imports the locally made image and index, pushes them with --plain-http,
# forgets them, pulls them back and every blob must match the original
# layout byte for byte. Sourced by run.sh.

ctr_pid="" ctr_sock=""

# ct ARGS...: ctr on our containerd, in namespace speedy-test.
ct() {
  timeout 60 ctr -a "$ctr_sock" -n speedy-test "$@"
}

run_ctr() {
  section ctr
  have ctr containerd || return 0
  have containerd containerd || return 0
  if [ "$(id -u)" != 0 ]; then
    skip "ctr round trips" "containerd needs root"
    return 0
  fi
  # Started here, not inside a check: a check runs in a subshell, and the
  # PID must reach ctr_stop.
  ctr_launch
  check "a private containerd answers (own config, root, state, socket)" ctr_wait
  check "import the 3-layer image, push --plain-http; the registry serves its digest" \
    ctr_import_push "$images/single" speedy-test/ctr "$single_digest"
  check "images rm, pull --plain-http: digest and every blob byte-exact" \
    ctr_pull_back "$images/single" speedy-test/ctr "$single_digest"
  check "the same for the two-platform index (--all-platforms)" \
    ctr_round_trip_index
}

# ctr_launch: starts containerd without CRI, with its own paths.
ctr_launch() {
  local d="$tmp/containerd"
  mkdir -p "$d/root" "$d/state" "$d/opt"
  ctr_sock="$d/c.sock"
  cat >"$d/config.toml" <<CONF
version = 2
root = "$d/root"
state = "$d/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$ctr_sock"
[ttrpc]
  address = "$d/c.ttrpc.sock"
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "$d/opt"
CONF
  containerd --config "$d/config.toml" >"$d/containerd.log" 2>&1 &
  ctr_pid=$!
}

# ctr_wait: containerd answers on its socket within 30 s.
ctr_wait() {
  wait_for 30 ct version || {
    tail -n 20 "$tmp/containerd/containerd.log"
    fail "containerd did not answer on $ctr_sock"
  }
  ct version
}

# ctr_stop: stops our containerd by its PID (run.sh's cleanup).
ctr_stop() {
  [ -n "$ctr_pid" ] || return 0
  kill -TERM "$ctr_pid" 2>/dev/null
  wait "$ctr_pid" 2>/dev/null
  ctr_pid=""
}

# ctr_import_push LAYOUT NAME DIGEST [flags]: imports LAYOUT as $reg/NAME:v1
# and pushes it.
ctr_import_push() {
  local layout=$1 name=$2 digest=$3 ref="$reg/$2:v1"
  shift 3
  tar -C "$layout" -cf "$tmp/ctr-import.tar" .
  ct images import "$@" --base-name "$reg/$name" "$tmp/ctr-import.tar"
  ct images ls
  same_text "imported digest" "$digest" "$(ct images ls | awk -v r="$ref" '$1 == r {print $3}')"
  ct images push --plain-http "$ref"
  registry_has_digest "$name" v1 "$digest"
}

# ctr_pull_back LAYOUT NAME DIGEST [flags]: removes the image and its
# content, pulls it back, compares every blob of LAYOUT.
ctr_pull_back() {
  local layout=$1 name=$2 digest=$3 ref="$reg/$2:v1" blob n=0
  shift 3
  ct images rm --sync "$ref"
  if ct content get "$digest" >/dev/null 2>&1; then
    fail "content $digest still in containerd after images rm --sync"
  fi
  ct images pull --plain-http --snapshotter native "$@" "$ref"
  same_text "pulled digest" "$digest" "$(ct images ls | awk -v r="$ref" '$1 == r {print $3}')"
  for blob in "$layout"/blobs/sha256/*; do
    ct content get "sha256:${blob##*/}" >"$tmp/ctr-blob"
    same_bytes "blob sha256:${blob##*/}" "$blob" "$tmp/ctr-blob"
    n=$((n + 1))
  done
  echo "$n blobs identical"
}

ctr_round_trip_index() {
  ctr_import_push "$images/multi" speedy-test/ctr-index "$index_digest" --all-platforms
  ctr_pull_back "$images/multi" speedy-test/ctr-index "$index_digest" --all-platforms
}
