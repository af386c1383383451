#!/usr/bin/env bash
# test_uploads.sh BUILD_DIR - the imageserver's blob uploads end to end
# (registry/uploads.c, docs/registry.md "Uploads"), with curl against a
# private cluster started by scripts/cluster in a temp dir on free ports.
#
# Covers: POST (202 and its headers), single POST ?digest= (Content-Length,
# chunked, an existing blob, the empty blob), POST+PUT with a body, streamed
# PATCHes then PUT, Content-Range chunks in and out of order (416), GET status,
# DELETE, mounts with and without from, wrong digests, bad uuids and query
# parameters, a retried PUT, sha512, keep-alive across error answers, a
# session continued on a second imageserver, a client cut off mid-PATCH then
# the PATCH retried, two PATCHes racing for one session, two pushes sharing a
# layer, and a 1 GiB streamed upload read back and hashed while the
# imageserver's peak RSS stays under 64 MiB.
#
# Environment: SPY_UPLOADS_BIG (bytes of the big upload, default 1073741824)
# and SPY_UPLOADS_RSS_KIB (the imageserver's VmHWM limit, default 65536; 0 =
# not checked, e.g. for a sanitizer build, whose shadow memory dwarfs it).
#
# Exits 77 (skipped) if a binary it needs is not built or installed.
set -euo pipefail

build=$(cd "${1:?usage: test_uploads.sh BUILD_DIR}" && pwd)
repo=$(cd "$(dirname "$0")/../.." && pwd)
cluster="$repo/scripts/cluster"
for b in chunkmaster/chunkmaster chunkserver/spy_server chunkserver/chunktool registry/imageserver; do
  [ -x "$build/$b" ] || { echo "SKIP: $build/$b is not built"; exit 77; }
done
mysql=$(command -v mariadb || command -v mysql || true)
for t in mariadbd mariadb-install-db curl sha256sum sha512sum; do
  command -v "$t" >/dev/null || [ -x "/usr/sbin/$t" ] || { echo "SKIP: $t is not installed"; exit 77; }
done
[ -n "$mysql" ] || { echo "SKIP: no mariadb client"; exit 77; }

dir=$(mktemp -d /tmp/spy-uploads-test-XXXXXX)
second_pid=""
# cleanup: stops what the test started, then fails the test if either
# imageserver reported a sanitizer error (leaks are reported at exit).
cleanup() {
  local rc=$? log bad=0
  [ -n "$second_pid" ] && kill "$second_pid" 2>/dev/null && wait "$second_pid" 2>/dev/null
  "$cluster" down --dir="$dir/cluster" >/dev/null 2>&1 || true
  for log in "$dir/cluster/registry/registry.log" "$dir/second.log"; do
    if [ -f "$log" ] && grep -q -E 'Sanitizer|runtime error:' "$log"; then
      echo "FAIL: sanitizer report in $log:" >&2
      grep -E -A30 'Sanitizer|runtime error:' "$log" | head -60 >&2
      bad=1
    fi
  done
  rm -rf "$dir"
  [ "$bad" = 0 ] || exit 1
  exit "$rc"
}
trap cleanup EXIT

fail() {
  echo "FAIL: $*" >&2
  [ -f "$dir/resp.h" ] && { echo "--- last response head:" >&2; cat "$dir/resp.h" >&2; }
  [ -f "$dir/resp.b" ] && { echo "--- last response body:" >&2; head -c 2000 "$dir/resp.b" >&2; echo >&2; }
  exit 1
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

big=${SPY_UPLOADS_BIG:-1073741824}
rss_limit=${SPY_UPLOADS_RSS_KIB:-65536}
# Other programs may take a port between free_block and the bind: try
# another block then.
for attempt in 1 2 3; do
  base=$(free_block 9)
  db_port=$base master_port=$((base + 1)) port=$((base + 7)) port2=$((base + 8))
  echo "== cluster up (ports $base..$((base + 8)))"
  # 3 x 512 MiB per spy_server: the 1 GiB blob may land in one group entirely.
  "$cluster" up --dir="$dir/cluster" --build="$build" --db_port="$db_port" \
    --master_port="$master_port" --first_chunkserver_port=$((base + 2)) \
    --registry_port="$port" --chunks=3 --chunk_size=512M --report_interval=1 --timeout=60 \
    >"$dir/up.log" 2>&1 && break
  grep -q -i -E 'already in use|address in use|bind' "$dir/up.log" "$dir"/cluster/*/*.{log,err} \
    2>/dev/null && [ "$attempt" -lt 3 ] || { cat "$dir/up.log" >&2; fail "cluster up failed"; }
  echo "   a port was taken meanwhile; another block. up said: $(tail -1 "$dir/up.log")"
  grep -h -i -E 'already in use|address in use' "$dir"/cluster/*/*.{log,err} 2>/dev/null | tail -2
  "$cluster" down --dir="$dir/cluster" >/dev/null 2>&1 || true
  rm -rf "$dir/cluster"
done
R="http://127.0.0.1:$port"
R2="http://127.0.0.1:$port2"
server_pid=$(cat "$dir/cluster/registry/registry.pid")

# sql QUERY: one value from the registry's database.
sql() { "$mysql" -h127.0.0.1 -P"$db_port" -uroot -N -B metadb -e "$1"; }

# wait_sql QUERY MIN: polls (up to 10 s) until QUERY gives at least MIN;
# orphans are recorded after the answer, asynchronously.
wait_sql() {
  for _ in $(seq 1 100); do
    [ "$(sql "$1")" -ge "$2" ] && return 0
    sleep 0.1
  done
  fail "'$1' stayed at $(sql "$1"), want $2 at least"
}

# req METHOD URL [curl args...]: the response head into $dir/h (CRs removed),
# its body into $dir/b; prints the status code.
req() {
  local method=$1 url=$2
  shift 2
  local how=(-X "$method")
  [ "$method" = HEAD ] && how=(-I)
  curl -sS "${how[@]}" -D "$dir/resp.raw" -o "$dir/resp.b" -w '%{http_code}' "$@" "$url" || true
  tr -d '\r' <"$dir/resp.raw" | awk '/^HTTP\/1\.1 100/{skip=1; next} skip&&/^$/{skip=0; next} !skip' \
    >"$dir/resp.h"
}

# hdr NAME: the value of header NAME in the last response (empty if absent).
hdr() { grep -i "^$1: " "$dir/resp.h" | head -1 | cut -d' ' -f2- || true; }

# expect WHAT GOT WANT: fails unless GOT equals WANT.
expect() { [ "$2" = "$3" ] || fail "$1: got '$2', want '$3'"; }

# expect_code CODE: the last error body names CODE.
expect_code() { grep -q "\"code\":\"$1\"" "$dir/resp.b" || fail "the error body lacks code $1"; }

# new_session BASEURL NAME: POSTs a new session and checks the 202 and its
# headers exactly; prints the Location.
new_session() {
  local code loc uuid
  code=$(req POST "$1/v2/$2/blobs/uploads/")
  expect "POST status" "$code" 202
  loc=$(hdr Location)
  [[ "$loc" =~ ^/v2/$2/blobs/uploads/([0-9a-f]{32})$ ]] || fail "POST Location '$loc'"
  uuid=${BASH_REMATCH[1]}
  expect "POST Range" "$(hdr Range)" "0-0"
  expect "POST Docker-Upload-UUID" "$(hdr Docker-Upload-UUID)" "$uuid"
  expect "POST Content-Length" "$(hdr Content-Length)" "0"
  echo "$loc"
}

# expect_blob NAME DIGEST FILE: GET returns FILE's bytes with the digest.
expect_blob() {
  local code
  code=$(req GET "$R/v2/$1/blobs/$2")
  expect "GET $1 blob" "$code" 200
  cmp -s "$dir/resp.b" "$3" || fail "GET $1/blobs/$2 returned other bytes"
  expect "GET Docker-Content-Digest" "$(hdr Docker-Content-Digest)" "$2"
}

# expect_created NAME DIGEST: the last answer is 201 for blob DIGEST in NAME.
expect_created() {
  expect "Location" "$(hdr Location)" "/v2/$1/blobs/$2"
  expect "Docker-Content-Digest" "$(hdr Docker-Content-Digest)" "$2"
  expect "Content-Length" "$(hdr Content-Length)" "0"
}

# section TITLE: prints the title and the time since the previous one.
section() { echo "== $1   (t=${SECONDS}s)"; }

sha() { echo "sha256:$(sha256sum "$1" | cut -d' ' -f1)"; }

# blob FILE SIZE: SIZE random bytes.
blob() { head -c "$2" /dev/urandom >"$dir/$1"; }

blob a 3000000
blob b 5000000
dd if="$dir/b" of="$dir/b1" bs=1000000 count=1 status=none
dd if="$dir/b" of="$dir/b2" bs=1000000 skip=1 count=2 status=none
dd if="$dir/b" of="$dir/b3" bs=1000000 skip=3 status=none
da=$(sha "$dir/a")
db=$(sha "$dir/b")

section "single POST ?digest= (Content-Length)"
code=$(req POST "$R/v2/u/mono/blobs/uploads/?digest=$da" --data-binary "@$dir/a")
expect "single POST" "$code" 201
expect_created u/mono "$da"
expect_blob u/mono "$da" "$dir/a"

section "single POST ?digest= (chunked), a blob that exists: verified, stored once"
pieces=$(sql "SELECT COUNT(*) FROM blob_pieces WHERE digest = '$da'")
code=$(req POST "$R/v2/u/mono2/blobs/uploads/?digest=$da" -H 'Transfer-Encoding: chunked' \
  --data-binary "@$dir/a")
expect "chunked single POST" "$code" 201
expect_created u/mono2 "$da"
expect_blob u/mono2 "$da" "$dir/a"
expect "blob rows" "$(sql "SELECT COUNT(*) FROM blobs WHERE digest = '$da'")" 1
expect "pieces" "$(sql "SELECT COUNT(*) FROM blob_pieces WHERE digest = '$da'")" "$pieces"

section "single POST with the wrong digest"
code=$(req POST "$R/v2/u/mono/blobs/uploads/?digest=$db" --data-binary "@$dir/a")
expect "wrong single POST" "$code" 400
expect_code DIGEST_INVALID
code=$(req HEAD "$R/v2/u/mono/blobs/$db")
expect "HEAD of the rejected digest" "$code" 404

section "the empty blob: single POST and POST+PUT"
e=sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
code=$(req POST "$R/v2/u/empty/blobs/uploads/?digest=$e" -H 'Content-Length: 0')
expect "empty single POST" "$code" 201
loc=$(new_session "$R" u/empty2)
code=$(req PUT "$R$loc?digest=$e")
expect "empty PUT" "$code" 201
code=$(req HEAD "$R/v2/u/empty2/blobs/$e")
expect "HEAD empty" "$code" 200
expect "empty Content-Length" "$(hdr Content-Length)" 0

section "POST then PUT with the whole body"
loc=$(new_session "$R" u/put)
code=$(req PUT "$R$loc?digest=$db" --data-binary "@$dir/b")
expect "monolithic PUT" "$code" 201
expect_created u/put "$db"
expect_blob u/put "$db" "$dir/b"
code=$(req PUT "$R$loc?digest=$db")
expect "retried PUT" "$code" 201
expect_created u/put "$db"
code=$(req GET "$R$loc")
expect "status of a completed session" "$code" 404
expect_code BLOB_UPLOAD_UNKNOWN

section "streamed PATCHes (chunked, then Content-Length without Content-Range), PUT without body"
loc=$(new_session "$R" u/stream)
code=$(req PATCH "$R$loc" -H 'Transfer-Encoding: chunked' --data-binary "@$dir/b1")
expect "streamed PATCH" "$code" 202
expect "PATCH Location" "$(hdr Location)" "$loc"
expect "PATCH Range" "$(hdr Range)" "0-999999"
expect "PATCH Docker-Upload-UUID" "$(hdr Docker-Upload-UUID)" "${loc##*/}"
code=$(req PATCH "$R$loc" --data-binary "@$dir/b2")
expect "PATCH with Content-Length" "$code" 202
expect "PATCH Range" "$(hdr Range)" "0-2999999"
code=$(req PATCH "$R$loc" -H 'Transfer-Encoding: chunked' --data-binary "@$dir/b3")
expect "last streamed PATCH" "$code" 202
expect "PATCH Range" "$(hdr Range)" "0-4999999"
code=$(req PUT "$R$loc?digest=$db")
expect "closing PUT" "$code" 201
expect_created u/stream "$db"
expect_blob u/stream "$db" "$dir/b"

section "chunks with Content-Range: in order, out of order (416), status between, final PUT chunk"
loc=$(new_session "$R" u/chunks)
code=$(req PATCH "$R$loc" -H 'Content-Range: 0-999999' --data-binary "@$dir/b1")
expect "chunk 1" "$code" 202
expect "chunk 1 Range" "$(hdr Range)" "0-999999"
code=$(req GET "$R$loc")
expect "status" "$code" 204
expect "status Range" "$(hdr Range)" "0-999999"
expect "status Location" "$(hdr Location)" "$loc"
expect "status Docker-Upload-UUID" "$(hdr Docker-Upload-UUID)" "${loc##*/}"
code=$(req PATCH "$R$loc" -H 'Content-Range: 3000000-3999999' --data-binary "@$dir/b1")
expect "out-of-order chunk" "$code" 416
expect_code RANGE_INVALID
expect "416 Range" "$(hdr Range)" "0-999999"
expect "416 Location" "$(hdr Location)" "$loc"
code=$(req PATCH "$R$loc" -H 'Content-Range: 0-999999' --data-binary "@$dir/b1")
expect "repeated chunk" "$code" 416
code=$(req PATCH "$R$loc" -H 'Content-Range: bytes=1000000-2999999' --data-binary "@$dir/b2")
expect "malformed Content-Range" "$code" 416
code=$(req PATCH "$R$loc" -H 'Content-Range: 1000000-1000009' --data-binary "@$dir/b2")
expect "Content-Length differing from Content-Range" "$code" 400
expect_code SIZE_INVALID
code=$(req PATCH "$R$loc" -H 'Content-Range: 1000000-2999999' -H 'Transfer-Encoding: chunked' \
  --data-binary "@$dir/b2")
expect "chunk 2 (chunked transfer)" "$code" 202
expect "chunk 2 Range" "$(hdr Range)" "0-2999999"
code=$(req PUT "$R$loc?digest=$db" -H 'Content-Range: 3000000-4999999' --data-binary "@$dir/b3")
expect "final chunk in PUT" "$code" 201
expect_blob u/chunks "$db" "$dir/b"

section "DELETE"
loc=$(new_session "$R" u/del)
code=$(req PATCH "$R$loc" --data-binary "@$dir/b1")
expect "PATCH before DELETE" "$code" 202
code=$(req DELETE "$R$loc")
expect "DELETE" "$code" 204
code=$(req DELETE "$R$loc")
expect "DELETE again" "$code" 404
expect_code BLOB_UPLOAD_UNKNOWN
code=$(req PATCH "$R$loc" --data-binary "@$dir/b1")
expect "PATCH after DELETE" "$code" 404
expect "cancelled pieces orphaned" "$(sql "SELECT COUNT(*) FROM orphans WHERE reason = 'upload cancelled'")" 1

section "mounts"
code=$(req POST "$R/v2/u/m1/blobs/uploads/?mount=$da&from=u/mono")
expect "mount with from" "$code" 201
expect_created u/m1 "$da"
expect_blob u/m1 "$da" "$dir/a"
code=$(req POST "$R/v2/u/m2/blobs/uploads/?mount=$da")
expect "mount without from" "$code" 201
expect_created u/m2 "$da"
code=$(req POST "$R/v2/u/m3/blobs/uploads/?mount=$da&from=u/empty")
expect "mount from a repository without the blob" "$code" 202
[[ "$(hdr Location)" =~ ^/v2/u/m3/blobs/uploads/[0-9a-f]{32}$ ]] || fail "fallback Location"
expect "fallback Range" "$(hdr Range)" "0-0"
code=$(req POST "$R/v2/u/m3/blobs/uploads/?mount=sha256:$(printf '%064d' 0)")
expect "mount of an unknown blob" "$code" 202
code=$(req POST "$R/v2/u/m3/blobs/uploads/?mount=nonsense&from=u/mono")
expect "mount of a malformed digest" "$code" 202
code=$(req HEAD "$R/v2/u/m3/blobs/$da")
expect "nothing mounted in m3" "$code" 404

section "wrong digest on PUT: 400, the session is cancelled, its pieces orphaned"
before=$(sql "SELECT COUNT(*) FROM orphans")
loc=$(new_session "$R" u/wrong)
code=$(req PATCH "$R$loc" --data-binary "@$dir/b1")
expect "PATCH" "$code" 202
code=$(req PUT "$R$loc?digest=$da" --data-binary "@$dir/b2")
expect "wrong PUT" "$code" 400
expect_code DIGEST_INVALID
code=$(req GET "$R$loc")
expect "session after a wrong digest" "$code" 404
wait_sql "SELECT COUNT(*) FROM orphans" $((before + 2))

section "bad requests"
code=$(req GET "$R/v2/u/bad/blobs/uploads/not-a-uuid")
expect "garbage uuid" "$code" 404
expect_code BLOB_UPLOAD_UNKNOWN
code=$(req PATCH "$R/v2/u/bad/blobs/uploads/$(printf '%032d' 7)" --data-binary x)
expect "unknown uuid" "$code" 404
expect_code BLOB_UPLOAD_UNKNOWN
loc=$(new_session "$R" u/bad)
code=$(req GET "$R/v2/u/other/blobs/uploads/${loc##*/}")
expect "uuid of another repository" "$code" 404
code=$(req PUT "$R$loc")
expect "PUT without digest" "$code" 400
expect_code DIGEST_INVALID
code=$(req PUT "$R$loc?digest=sha256:abc")
expect "PUT with a malformed digest" "$code" 400
expect_code DIGEST_INVALID
code=$(req POST "$R/v2/u/bad/blobs/uploads/?digest=md5:abc" --data-binary x)
expect "single POST with an unsupported algorithm" "$code" 400
code=$(req POST "$R/v2/U/bad/blobs/uploads/")
expect "invalid name" "$code" 400
expect_code NAME_INVALID

section "sha512: PUT (read back to hash) and single POST"
d512=sha512:$(sha512sum "$dir/b" | cut -d' ' -f1)
loc=$(new_session "$R" u/s512)
code=$(req PATCH "$R$loc" --data-binary "@$dir/b1")
expect "PATCH" "$code" 202
code=$(req PUT "$R$loc?digest=$d512&digest=$db" --data-binary "@$dir/b2")
expect "sha512 PUT of a short blob" "$code" 400
expect_code DIGEST_INVALID
loc=$(new_session "$R" u/s512)
code=$(req PATCH "$R$loc" --data-binary "@$dir/b1")
code=$(req PUT "$R$loc?digest=$d512&digest=$db" -H 'Transfer-Encoding: chunked' \
  --data-binary @<(cat "$dir/b2" "$dir/b3"))
expect "sha512 PUT" "$code" 201
expect_created u/s512 "$d512"
expect_blob u/s512 "$d512" "$dir/b"
da512=sha512:$(sha512sum "$dir/a" | cut -d' ' -f1)
code=$(req POST "$R/v2/u/s512/blobs/uploads/?digest=$da512" --data-binary "@$dir/a")
expect "sha512 single POST" "$code" 201

section "keep-alive across answers, errors included"
loc=$(new_session "$R" u/ka)
w=(-sS -o /dev/null -w '%{num_connects} ')
n=$(curl "${w[@]}" "$R$loc" --next "${w[@]}" -X PATCH -H 'Content-Range: 9-9' --data-binary x \
  "$R$loc" --next "${w[@]}" -X PATCH --data-binary "@$dir/b1" "$R$loc" --next "${w[@]}" \
  "$R$loc" --next "${w[@]}" -X DELETE "$R$loc")
expect "connections opened per request" "$n" "1 0 0 0 0 "

section "a session continued on a second imageserver (same MySQL and master; 64 KiB pieces)"
"$build/registry/imageserver" -h=127.0.0.1 -p="$port2" -mh=127.0.0.1 -mp="$master_port" \
  -dh=127.0.0.1 -dp="$db_port" -n=2 --piece_size=64K --threads=2 >"$dir/second.log" 2>&1 &
second_pid=$!
for _ in $(seq 1 100); do
  [ "$(curl -s -o /dev/null -w '%{http_code}' "$R2/v2/")" = 200 ] && break
  sleep 0.1
done
[ "$(curl -s -o /dev/null -w '%{http_code}' "$R2/v2/")" = 200 ] || fail "second imageserver down"
loc=$(new_session "$R" u/two)
code=$(req PATCH "$R2$loc" -H 'Content-Range: 0-999999' --data-binary "@$dir/b1")
expect "PATCH on the second" "$code" 202
code=$(req GET "$R$loc")
expect "status on the first" "$code" 204
expect "status Range" "$(hdr Range)" "0-999999"
code=$(req PATCH "$R$loc" -H 'Content-Range: 1000000-2999999' --data-binary "@$dir/b2")
expect "PATCH on the first" "$code" 202
code=$(req PUT "$R2$loc?digest=$db" --data-binary "@$dir/b3")
expect "PUT on the second" "$code" 201
expect_blob u/two "$db" "$dir/b"

# raw_patch LOC RANGE LENGTH: opens a PATCH on fd 3 with Expect:
# 100-continue and waits for "100 Continue", which the imageserver sends only
# once it has read the session (and is ready for the body).
raw_patch() {
  exec 3<>"/dev/tcp/127.0.0.1/$port"
  printf 'PATCH %s HTTP/1.1\r\nHost: x\r\nContent-Range: %s\r\nContent-Length: %s\r\nExpect: 100-continue\r\n\r\n' \
    "$1" "$2" "$3" >&3
  local line
  IFS= read -r -t 10 line <&3 || fail "no interim answer to a raw PATCH"
  [[ "$line" == "HTTP/1.1 100 Continue"* ]] || fail "raw PATCH got '$line'"
  IFS= read -r -t 10 line <&3 || true
}

section "a client cut off mid-PATCH, then the PATCH retried"
loc=$(new_session "$R" u/cut)
code=$(req PATCH "$R$loc" -H 'Content-Range: 0-999999' --data-binary "@$dir/b1")
expect "first chunk" "$code" 202
before=$(sql "SELECT COUNT(*) FROM orphans WHERE reason = 'upload aborted'")
raw_patch "$loc" 1000000-2999999 2000000
head -c 1500000 "$dir/b2" >&3
exec 3>&-
wait_sql "SELECT COUNT(*) FROM orphans WHERE reason = 'upload aborted'" $((before + 1))
code=$(req GET "$R$loc")
expect "status after the cut" "$code" 204
expect "Range after the cut" "$(hdr Range)" "0-999999"
code=$(req PATCH "$R$loc" -H 'Content-Range: 1000000-2999999' --data-binary "@$dir/b2")
expect "retried PATCH" "$code" 202
expect "retried PATCH Range" "$(hdr Range)" "0-2999999"
code=$(req PUT "$R$loc?digest=$db" --data-binary "@$dir/b3")
expect "PUT after the retry" "$code" 201
expect_blob u/cut "$db" "$dir/b"

section "two PATCHes racing for one session: the later append gets 416"
loc=$(new_session "$R" u/race)
raw_patch "$loc" 0-999999 1000000
code=$(req PATCH "$R$loc" -H 'Content-Range: 0-1999999' --data-binary @<(cat "$dir/b1" "$dir/b1"))
expect "the faster PATCH" "$code" 202
cat "$dir/b1" >&3
raw=""
while IFS= read -r -t 20 line <&3; do # the head, up to its blank line
  line=${line%$'\r'}
  [ -z "$line" ] && break
  raw+="$line"$'\n'
done
exec 3>&-
[[ "$raw" == "HTTP/1.1 416 "* ]] || fail "the slower PATCH got: ${raw%%$'\n'*}"
[[ "$raw" == *$'\nRange: 0-1999999\n'* ]] || fail "the 416 does not give the current Range"
code=$(req GET "$R$loc")
expect "Range after the race" "$(hdr Range)" "0-1999999"

section "two pushes sharing a layer, at the same time"
blob s 4000000
ds=$(sha "$dir/s")
pids=()
for i in 1 2; do
  (
    l=$(curl -sS -D - -o /dev/null -X POST "$R/v2/u/share$i/blobs/uploads/" | tr -d '\r' |
      sed -n 's/^Location: //p')
    curl -sS -o /dev/null -w '%{http_code}' -X PATCH -H 'Transfer-Encoding: chunked' \
      --data-binary "@$dir/s" "$R$l" >"$dir/share$i.patch"
    curl -sS -o /dev/null -w '%{http_code}' -X PUT "$R$l?digest=$ds" >"$dir/share$i.put"
  ) &
  pids+=($!)
done
(curl -sS -o /dev/null -w '%{http_code}' -X POST --data-binary "@$dir/s" \
  "$R2/v2/u/share3/blobs/uploads/?digest=$ds" >"$dir/share3.put") &
pids+=($!)
wait "${pids[@]}"
for i in 1 2; do
  expect "share$i PATCH" "$(cat "$dir/share$i.patch")" 202
  expect "share$i PUT" "$(cat "$dir/share$i.put")" 201
done
expect "share3 single POST" "$(cat "$dir/share3.put")" 201
for i in 1 2 3; do expect_blob "u/share$i" "$ds" "$dir/s"; done
expect "shared blob rows" "$(sql "SELECT COUNT(*) FROM blobs WHERE digest = '$ds'")" 1

section "$big bytes streamed in one PATCH, read back and hashed; the imageserver's memory stays flat"
loc=$(new_session "$R" u/big)
start=$(date +%s%N)
code=$(head -c "$big" /dev/urandom | tee >(sha256sum | cut -d' ' -f1 >"$dir/big.sha") |
  curl -sS -o /dev/null -w '%{http_code}' -X PATCH -H 'Transfer-Encoding: chunked' -T - "$R$loc")
expect "big PATCH" "$code" 202
for _ in $(seq 1 50); do [ -s "$dir/big.sha" ] && break; sleep 0.1; done
dbig="sha256:$(cat "$dir/big.sha")"
code=$(req PUT "$R$loc?digest=$dbig")
expect "big PUT" "$code" 201
up_ms=$((($(date +%s%N) - start) / 1000000))
start=$(date +%s%N)
got=$(curl -sS "$R/v2/u/big/blobs/$dbig" | sha256sum | cut -d' ' -f1)
down_ms=$((($(date +%s%N) - start) / 1000000))
expect "big read back" "sha256:$got" "$dbig"
hwm=$(awk '/^VmHWM:/{print $2}' "/proc/$server_pid/status")
echo "   $big bytes: PATCH+PUT $up_ms ms ($((big / 1000 / up_ms)) MB/s, /dev/urandom included)," \
  "GET+sha256sum $down_ms ms; imageserver VmHWM $hwm KiB"
[ "$rss_limit" = 0 ] || [ "$hwm" -lt "$rss_limit" ] ||
  fail "imageserver peak RSS $hwm KiB is over $rss_limit KiB"

echo "PASS (${SECONDS}s)"
