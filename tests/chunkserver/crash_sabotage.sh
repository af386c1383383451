#!/usr/bin/env bash
# crash_sabotage.sh - proves crash_test can fail: runs it against a spy_server
# whose data is damaged between the kill and the restart, and passes only if
# crash_test reports a VIOLATION and exits non-zero.
#
# usage: crash_sabotage.sh CRASH_TEST SPY_SERVER corrupt|lose
#   corrupt  flips the first body byte of the first record of every used chunk
#   lose     zeroes the first 1 MiB of records of every used chunk
#
# crash_test starts "--server=$0"; with SABOTAGE_SERVER set this script is
# that server: on a restart (chunk files already there) it damages them, then
# execs the real spy_server with the same arguments.
set -euo pipefail

# damage MODE DATA_DIR: the sabotage itself, on chunks with a record at 4096.
damage() {
  local f first
  for f in "$2"/*.chunk; do
    first=$(od -An -tu1 -j 4096 -N 1 "$f" | tr -d ' ')
    [[ $first == 0 ]] && continue
    if [[ $1 == corrupt ]]; then
      # record header is 48 bytes: byte 4144 is the first body byte
      local old
      old=$(od -An -tu1 -j 4144 -N 1 "$f" | tr -d ' ')
      printf '%b' "\\0$(printf '%03o' $((old ^ 0xff)))" |
        dd of="$f" bs=1 seek=4144 conv=notrunc status=none
    else
      dd if=/dev/zero of="$f" bs=4096 seek=1 count=256 conv=notrunc status=none
    fi
  done
}

if [[ -n ${SABOTAGE_SERVER:-} ]]; then
  for arg in "$@"; do
    case "$arg" in --data_dir=*) data_dir=${arg#*=} ;; esac
  done
  if compgen -G "$data_dir/*.chunk" >/dev/null; then
    damage "$SABOTAGE_MODE" "$data_dir"
  fi
  exec "$SABOTAGE_SERVER" "$@"
fi

[[ $# == 3 ]] || { echo "usage: $0 CRASH_TEST SPY_SERVER corrupt|lose" >&2; exit 2; }
export SABOTAGE_SERVER=$2 SABOTAGE_MODE=$3
out=$(mktemp /tmp/spy-sabotage-XXXXXX)
trap 'rm -f "$out"' EXIT
rc=0
"$1" --server="$(readlink -f "$0")" --rounds=1 --round_bytes=32M >"$out" 2>&1 || rc=$?
if [[ $rc != 0 ]] && grep -q VIOLATION "$out"; then
  grep -m 3 VIOLATION "$out"
  echo "crash_sabotage ($3): crash_test caught the damage (exit $rc)"
  exit 0
fi
cat "$out"
echo "crash_sabotage ($3): crash_test did NOT report the damage (exit $rc)" >&2
exit 1
