# tests/clients/lib.sh - the small harness the client round trips share:
# checks that print one line each and are counted, free loopback ports,
# waiting, and byte comparisons. Sourced by run.sh (bash, set -u).
#
# A "section" groups checks that build on each other: once one check of a
# section fails, the rest of that section are reported as skipped (they would
# only fail for the same reason). Sections are independent of each other.

passed=0 failed=0 skipped=0
section_name="" section_broken=0 check_seq=0

# section NAME: starts a group of dependent checks.
section() {
  section_name=$1
  section_broken=0
}

# check TITLE CMD...: runs CMD with its output in a log of its own; prints
# "PASS|FAIL section: TITLE" and, on failure, the end of that log. CMD runs
# in a subshell with errexit on. Always returns 0 (the caller runs under
# set -e); a failure marks the section broken, which skips its later checks.
check() {
  local title=$1 log rc start took
  shift
  check_seq=$((check_seq + 1))
  if [ "$section_broken" = 1 ]; then
    printf 'SKIP %s: %s (an earlier check of this section failed)\n' "$section_name" "$title"
    skipped=$((skipped + 1))
    return 0
  fi
  log="$logs/$(printf '%03d' "$check_seq")-${section_name//[^a-z0-9]/_}.log"
  start=$(date +%s%N)
  set +e
  (set -e; "$@") >"$log" 2>&1
  rc=$?
  set -e
  took=$(( ($(date +%s%N) - start) / 1000000 ))
  took="$((took / 1000)).$(printf '%03d' $((took % 1000)) | cut -c1) s"
  if [ "$rc" = 0 ]; then
    printf 'PASS %s: %s (%s)\n' "$section_name" "$title" "$took"
    passed=$((passed + 1))
    return 0
  fi
  printf 'FAIL %s: %s (exit %s, %s)\n' "$section_name" "$title" "$rc" "$took"
  tail -n 25 "$log" | sed 's/^/    | /'
  failed=$((failed + 1))
  section_broken=1
}

# skip TITLE REASON: counts a check that cannot run here.
skip() {
  printf 'SKIP %s: %s (%s)\n' "$section_name" "$1" "$2"
  skipped=$((skipped + 1))
}

# summary: the closing line; returns non-zero if any check failed.
summary() {
  if [ "$skipped" -gt 0 ]; then
    echo "$passed passed, $failed failed, $skipped skipped"
  else
    echo "$passed passed, $failed failed"
  fi
  [ "$failed" = 0 ]
}

# fail MESSAGE: a check function's way to say why it failed.
fail() {
  echo "check failed: $*" >&2
  return 1
}

# used_ports: every local TCP port some socket holds (listening, connected
# or in TIME_WAIT), from /proc/net/tcp and tcp6, in decimal.
used_ports() {
  local port
  for port in $(awk 'NR > 1 {split($2, a, ":"); print a[2]}' /proc/net/tcp /proc/net/tcp6 2>/dev/null); do
    echo $((16#$port))
  done | sort -un
}

# free_ports COUNT: prints the first of COUNT consecutive ports no socket
# uses, chosen at random below the kernel's ephemeral range (so an outgoing
# connection cannot take one before our daemons bind it). Another process
# may still take one first; target.sh retries the start for that.
free_ports() {
  local count=$1 low=10000 high base i used
  high=$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
  high=$((high - count))
  [ "$high" -gt $((low + 1000)) ] || high=$((low + 20000))
  used=" $(used_ports | tr '\n' ' ') "
  for _ in $(seq 1 100); do
    base=$((low + (RANDOM * 32768 + RANDOM) % (high - low)))
    for ((i = 0; i < count; i++)); do
      [[ "$used" != *" $((base + i)) "* ]] || continue 2
    done
    echo "$base"
    return 0
  done
  echo "no $count consecutive free ports found" >&2
  return 1
}

# wait_for SECONDS CMD...: retries CMD every 0.2 s until it succeeds.
wait_for() {
  local limit=$(($1 * 5)) i=0
  shift
  until "$@" >/dev/null 2>&1; do
    i=$((i + 1))
    [ "$i" -lt "$limit" ] || return 1
    sleep 0.2
  done
}

# sha256_of FILE: "sha256:<hex>" of FILE's bytes.
sha256_of() {
  echo "sha256:$(sha256sum "$1" | cut -d' ' -f1)"
}

# same_bytes WHAT EXPECTED ACTUAL: cmp, with a message naming WHAT.
same_bytes() {
  cmp -s "$2" "$3" || fail "$1 differs: $2 vs $3 ($(stat -c %s "$2") vs $(stat -c %s "$3" 2>/dev/null || echo missing) bytes)"
}

# same_text WHAT EXPECTED ACTUAL: string equality, with a message.
same_text() {
  [ "$2" = "$3" ] || fail "$1: expected '$2', got '$3'"
}

# same_tree WHAT DIR1 DIR2: every regular file of DIR1 is in DIR2 with the
# same bytes (DIR2 may hold more, e.g. a layer's directories).
same_tree() {
  local f n=0
  while IFS= read -r -d '' f; do
    f=${f#"$2"/}
    same_bytes "$1 file $f" "$2/$f" "$3/$f" || return 1
    n=$((n + 1))
  done < <(find "$2" -type f -print0)
  [ "$n" -gt 0 ] || fail "$1: nothing to compare in $2"
  echo "$1: $n files identical"
}

# http_code METHOD URL [curl args...]: prints the HTTP status of the request.
http_code() {
  local method=(-X "$1") url=$2
  shift 2
  # -X HEAD would wait for a body that never comes: curl's HEAD is -I.
  [ "${method[1]}" != HEAD ] || method=(-I)
  curl -s --max-time 30 -o /dev/null -w '%{http_code}' "${method[@]}" "$@" "$url"
}

# Every manifest media type a client may have pushed.
readonly ACCEPT_ALL="application/vnd.oci.image.index.v1+json,application/vnd.oci.image.manifest.v1+json,application/vnd.docker.distribution.manifest.list.v2+json,application/vnd.docker.distribution.manifest.v2+json"

# registry_manifest NAME REF OUT: GETs the manifest NAME:REF into OUT; fails
# unless the answer is 200 and Docker-Content-Digest is the body's sha256.
registry_manifest() {
  local code header
  code=$(curl -sS --max-time 30 -o "$3" -D "$3.headers" -w '%{http_code}' \
    -H "Accept: $ACCEPT_ALL" "http://$reg/v2/$1/manifests/$2")
  same_text "GET /v2/$1/manifests/$2 status" 200 "$code"
  header=$(tr -d '\r' <"$3.headers" | sed -n 's/^[Dd]ocker-[Cc]ontent-[Dd]igest: //p')
  same_text "Docker-Content-Digest of $1:$2" "$(sha256_of "$3")" "$header"
}

# registry_has_digest NAME TAG DIGEST: the registry serves NAME:TAG and its
# bytes hash to DIGEST (what the client said it pushed).
registry_has_digest() {
  registry_manifest "$1" "$2" "$tmp/manifest.$$"
  same_text "digest of $1:$2 in the registry" "$3" "$(sha256_of "$tmp/manifest.$$")"
}

# random_context DIR: a build context with three files of random bytes
# (6 MiB + 7 bytes: several 2 MiB pieces; 50000 bytes; 1 byte) under DIR/files/.
random_context() {
  mkdir -p "$1/files"
  head -c 6291463 /dev/urandom >"$1/files/a"
  head -c 50000 /dev/urandom >"$1/files/b"
  head -c 1 /dev/urandom >"$1/files/c"
}
