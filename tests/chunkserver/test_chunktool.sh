#!/usr/bin/env bash
# test_chunktool.sh - drives the chunktool binary against a real spy_server.
#
# usage: test_chunktool.sh <chunktool> <spy_server>
#
# Starts spy_server on a free 127.0.0.1 port with a temp data dir, then checks
# put/get/cmp, a range get against dd's slice, stat, status, delete, stdin
# puts, fill, and the error contract: exit 1 with exactly one line
# "chunktool: <what>: <reason>" for a failed operation, exit 2 for bad usage.
set -euo pipefail

tool=$1
server=$2
work=$(mktemp -d /tmp/spy_test_chunktool.XXXXXX)
server_pid=

cleanup() {
  if [ -n "$server_pid" ]; then
    kill -TERM "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

fail() {
  echo "FAIL: $*" >&2
  if [ -f "$work/server.log" ]; then
    echo "--- server.log (tail)" >&2
    tail -n 20 "$work/server.log" >&2
  fi
  exit 1
}

# port_is_free: nothing accepts connections on 127.0.0.1:$1.
port_is_free() {
  ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

pick_port() {
  local p
  for _ in $(seq 1 50); do
    p=$((10000 + RANDOM % 22000))
    if port_is_free "$p"; then
      echo "$p"
      return 0
    fi
  done
  return 1
}

# start_server: spy_server on a fresh port; retries with another port if it
# exits (e.g. the port was taken in between). Sets port and server_pid.
start_server() {
  local master_port
  for _ in 1 2 3; do
    port=$(pick_port) || fail "no free port"
    master_port=$(pick_port) || fail "no free port"
    rm -rf "$work/data" && mkdir "$work/data"
    "$server" --port="$port" --ip=127.0.0.1 --data_dir="$work/data" \
      --error_log="$work/server.log" --chunks=4 --chunk_size=8M \
      --master_ip=127.0.0.1 --master_port="$master_port" --group_id=1 &
    server_pid=$!
    for _ in $(seq 1 300); do
      if "$tool" --port="$port" --timeout=1 ping >/dev/null 2>&1; then
        return 0
      fi
      kill -0 "$server_pid" 2>/dev/null || break
      sleep 0.05
    done
    kill -KILL "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=
  done
  fail "spy_server did not start"
}

ct() {
  "$tool" --port="$port" "$@"
}

# expect_error: runs chunktool, expects exit status $1 and exactly one line on
# stderr that matches the pattern $2.
expect_error() {
  local want=$1 pattern=$2 rc=0
  shift 2
  ct "$@" >"$work/out" 2>"$work/err" || rc=$?
  [ "$rc" -eq "$want" ] || fail "chunktool $*: exit $rc, want $want ($(cat "$work/err"))"
  [ "$(wc -l <"$work/err")" -eq 1 ] || fail "chunktool $*: stderr is not one line: $(cat "$work/err")"
  grep -qE "$pattern" "$work/err" || fail "chunktool $*: stderr '$(cat "$work/err")' !~ /$pattern/"
}

start_server

# put a file (3 MiB + 7: several DATA frames), get it back, compare.
head -c $((3 * 1024 * 1024 + 7)) /dev/urandom >"$work/obj"
ct put 101 "$work/obj" >/dev/null || fail "put"
ct get 101 >"$work/back" || fail "get"
cmp "$work/obj" "$work/back" || fail "get returned other bytes"

# a range across the 1 MiB DATA boundary, compared with dd's slice.
off=$((1024 * 1024 - 5)) len=100000
ct get 101 --offset=$off --length=$len >"$work/range" || fail "range get"
dd if="$work/obj" of="$work/slice" bs=64K iflag=skip_bytes,count_bytes skip=$off count=$len \
  status=none
cmp "$work/slice" "$work/range" || fail "range get differs from dd's slice"
# length 0 = to the end
ct get 101 --offset=$((3 * 1024 * 1024)) >"$work/tail" || fail "tail get"
[ "$(stat -c %s "$work/tail")" -eq 7 ] || fail "tail get is not 7 bytes"

# stat
ct stat 101 >"$work/stat" || fail "stat"
grep -qE '^fid +101$' "$work/stat" || fail "stat: no fid line: $(cat "$work/stat")"
grep -qE "^len +$((3 * 1024 * 1024 + 7))\$" "$work/stat" || fail "stat: wrong len"
grep -qE '^chunk_id +[1-4]$' "$work/stat" || fail "stat: no chunk_id"

# status is pretty JSON (one key per line)
ct status >"$work/status" || fail "status"
head -n 1 "$work/status" | grep -q '^{' || fail "status is not a JSON object"
[ "$(wc -l <"$work/status")" -gt 2 ] || fail "status is not indented"

# ping
ct ping | grep -q '^pong' || fail "ping"

# stdin put needs --max_len; with it, it streams.
head -c 70000 /dev/urandom >"$work/small"
expect_error 2 '^chunktool: .*--max_len' put 102 - <"$work/small"
ct put 102 - --max_len=1M <"$work/small" >/dev/null || fail "stdin put"
ct get 102 | cmp - "$work/small" || fail "stdin put read back"
expect_error 1 '^chunktool: put 103: read stdin: input is larger than --max_len$' \
  put 103 - --max_len=1000 <"$work/small"
expect_error 1 '^chunktool: get 103: not found$' get 103

# duplicate put: EEXISTS, exit 1, one line
expect_error 1 '^chunktool: put 101: fid already exists$' put 101 "$work/small"

# delete, then everything about the fid is not found
ct delete 102 || fail "delete"
expect_error 1 '^chunktool: get 102: not found$' get 102
expect_error 1 '^chunktool: stat 102: not found$' stat 102
expect_error 1 '^chunktool: delete 102: not found$' delete 102
expect_error 1 '^chunktool: put 102: fid already exists$' put 102 "$work/small"

# ranges outside the object
expect_error 1 '^chunktool: get 101: range outside the object$' get 101 --offset=$((4 * 1024 * 1024))
expect_error 1 '^chunktool: get 101: range outside the object$' get 101 --offset=1 \
  --length=$((3 * 1024 * 1024 + 7))

# fill writes readable objects and reports a rate
ct fill 200 5 300K >"$work/fill" || fail "fill"
grep -qE '^fill: 5 objects of 307200 bytes in .* MB/s' "$work/fill" || fail "fill output: $(cat "$work/fill")"
ct stat 204 | grep -qE '^len +307200$' || fail "fill object 204"

# usage errors: exit 2, one line
expect_error 2 '^chunktool: no command given'
expect_error 2 '^chunktool: unknown command' frobnicate
expect_error 2 '^chunktool: a fid is a whole decimal number' get 12x
expect_error 2 '^chunktool: unknown flag' --bogus=1 ping
expect_error 2 '^chunktool: bad value for --port' --port=0 ping
expect_error 1 '^chunktool: put 5: open /nonexistent: No such file or directory$' put 5 /nonexistent
ct --help | grep -q '^usage: chunktool' || fail "--help"

# a server that is gone: exit 1, one line naming the connect
kill -TERM "$server_pid"
wait "$server_pid" || fail "spy_server did not exit 0 on SIGTERM"
server_pid=
expect_error 1 "^chunktool: connect 127.0.0.1 port $port: " ping

echo "test_chunktool: all checks passed"
