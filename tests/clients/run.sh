#!/usr/bin/env bash
# tests/clients/run.sh - round trips of real registry clients (skopeo, podman,
# buildah, containerd's ctr, docker) against a registry of our own on
# loopback, byte-exact. Prints one line per check and "N passed, N failed[,
# N skipped]"; exits 1 if any check failed (starting the registry is one),
# 2 for a bad argument.
#
#   tests/clients/run.sh [--against=cluster|reference] [--build=DIR]
#                        [--only=LIST] [--keep]
#
#   --against=cluster    [default] scripts/cluster up in a temp dir, on free
#                        random ports (the registry too), then down
#   --against=reference  the CNCF reference registry (Debian docker-registry)
#                        with filesystem storage and deletes enabled: to tell
#                        our registry's faults from a client's or this test's
#   --build=DIR          [build] the binaries scripts/cluster runs
#   --only=LIST          comma-separated subset of: skopeo,referrers,podman,
#                        buildah,ctr,docker (default: all)
#   --keep               keep the temp dir (logs, images) and say where
#
# Environment: SPEEDY_CLIENTS_DEADLINE (seconds for the whole run, 280),
# SPEEDY_CLIENTS_TRACE=1 (bash -x with timestamps, to find what is slow).
#
# A client that is not installed is skipped (counted); docker is skipped when
# `docker info` fails. Everything the test makes lives in its temp dir
# (containers-storage, containerd's root, state and socket, OCI layouts)
# except docker's images, which are all named 127.0.0.1:PORT/speedy-test/*
# and removed at the end. Nothing but 127.0.0.1 is contacted.
set -euo pipefail
if [ "${SPEEDY_CLIENTS_TRACE:-0}" = 1 ]; then
  PS4='+ ${EPOCHREALTIME} ${BASH_SOURCE##*/}:${LINENO} '
  set -x
fi

here=$(cd "$(dirname "$0")" && pwd)
repo_root=$(cd "$here/../.." && pwd)

against=cluster build=build only=skopeo,referrers,podman,buildah,ctr,docker keep=0
for arg in "$@"; do
  case "$arg" in
    --against=cluster | --against=reference) against=${arg#*=} ;;
    --build=*) build=${arg#*=} ;;
    --only=*) only=${arg#*=} ;;
    --keep) keep=1 ;;
    -h | --help) sed -n '2,28p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "clients: unknown argument '$arg' (see --help)" >&2; exit 2 ;;
  esac
done
case "$build" in /*) ;; *) build="$repo_root/$build" ;; esac
for part in ${only//,/ }; do
  case "$part" in
    skopeo | referrers | podman | buildah | ctr | docker) ;;
    *) echo "clients: --only: unknown part '$part'" >&2; exit 2 ;;
  esac
done

# shellcheck source=tests/clients/lib.sh
. "$here/lib.sh"
# shellcheck source=tests/clients/oci.sh
. "$here/oci.sh"
# shellcheck source=tests/clients/target.sh
. "$here/target.sh"
# shellcheck source=tests/clients/containers.sh
. "$here/containers.sh"
# shellcheck source=tests/clients/skopeo.sh
. "$here/skopeo.sh"
# shellcheck source=tests/clients/referrers.sh
. "$here/referrers.sh"
# shellcheck source=tests/clients/podman.sh
. "$here/podman.sh"
# shellcheck source=tests/clients/buildah.sh
. "$here/buildah.sh"
# shellcheck source=tests/clients/ctr.sh
. "$here/ctr.sh"
# shellcheck source=tests/clients/docker.sh
. "$here/docker.sh"

# The temp dir lives under /tmp: containerd's socket path must stay short.
tmp=$(mktemp -d /tmp/speedy-clients.XXXXXX)
logs="$tmp/logs"
mkdir -p "$logs"
export TMPDIR="$tmp/tmp"
mkdir -p "$TMPDIR"

# cleanup: stops what this run started (by PID), removes its docker images
# and its temp dir; runs on every exit.
cleanup() {
  local rc=$?
  set +e
  stop_watchdog
  ctr_stop
  docker_cleanup
  target_stop
  if [ "$keep" = 1 ]; then
    echo "clients: kept $tmp"
  else
    rm -rf "$tmp"
  fi
  exit "$rc"
}

# The whole run is bounded: past the deadline the run counts a failure,
# prints its summary and cleans up (each client command has its own
# time limit too, so the check in progress ends soon after).
deadline=${SPEEDY_CLIENTS_DEADLINE:-280}
watchdog=""
on_deadline() {
  echo "FAIL clients: the run took longer than ${deadline} s"
  failed=$((failed + 1))
  summary
  exit 1
}
# stop_watchdog: the watchdog subshell first, then its sleep (the other
# order would let the subshell go on to its kill).
stop_watchdog() {
  [ -n "$watchdog" ] || return 0
  local sleeper
  sleeper=$(pgrep -P "$watchdog")
  kill "$watchdog" 2>/dev/null
  [ -z "$sleeper" ] || kill "$sleeper" 2>/dev/null
  watchdog=""
}
trap cleanup EXIT
trap 'exit 130' INT
trap on_deadline TERM
(sleep "$deadline" && kill -TERM $$) &
watchdog=$!

wanted() { [[ ",$only," == *",$1,"* ]]; }

echo "clients: against $against, temp dir $tmp"
section "$against"
if ! target_start 2>"$logs/target-start.err"; then
  echo "FAIL $against: start the registry"
  sed 's/^/    | /' "$logs/target-start.err"
  failed=$((failed + 1))
  summary
  exit 1
fi
grep -h 'port was taken' "$logs/target-start.err" || true
echo "clients: registry at http://$reg/v2/"

# Images every section may use: a multi-layer OCI image and a two-platform
# index, both made here from random bytes.
images="$tmp/images"
make_images
containers_setup

wanted skopeo && run_skopeo
wanted referrers && run_referrers
wanted podman && run_podman
wanted buildah && run_buildah
wanted ctr && run_ctr
wanted docker && run_docker

[ "$failed" = 0 ] || target_log_tail
summary
