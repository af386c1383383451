#!/usr/bin/env bash
# tests/e2e/compose.sh - docker push / docker pull through the compose cluster.
#
# Brings up docker-compose.yml as project speedy-e2e (building the images it
# needs first with scripts/docker-images), pushes a three-layer image made
# locally (FROM scratch, COPY of random files, one larger than a piece),
# removes it locally, pulls it back by tag and by digest, and checks it
# byte-exact: same layer diff ids (sha256 of each uncompressed layer tar),
# same files (docker export, cmp). Then docker compose down -v.
#
# Prints "skipped: no docker engine" and exits 0 where `docker info` fails.
# Ends with "N passed, N failed"; exit 1 if anything failed.
#
# Cleans up exactly what it made: the compose project's containers, network
# and volumes, the test image (localhost:PORT/speedy-e2e/*), its export
# container, its temp dir, the speedy image if this run built it
# (SPEEDY_E2E_KEEP_IMAGE=1 keeps it), and the untagged images that earlier
# builds of Dockerfile left (label io.speedy.image; the newest build stage is
# kept as the compile cache). The base images from scripts/docker-images stay:
# they are the local stand-ins for the pulls.
#
# Environment: SPEEDY_E2E_REGISTRY_PORT (default 5000, or the next free port
# from 5000 up), SPEEDY_E2E_TIMEOUT (seconds for the cluster to get healthy,
# default 240). Every step has a time limit; a first run on a fresh machine
# spends most of its time building images (apt + compile, ~10 minutes).
# The test steps are functions run through check(), which shellcheck cannot follow.
# shellcheck disable=SC2317
set -uo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
project=speedy-e2e
image=speedy:dev
passed=0
failed=0

say() { echo "compose: $*"; }

# check NAME CMD...: runs CMD, counts and reports the result.
check() {
  local name=$1
  shift
  if "$@"; then
    passed=$((passed + 1))
    say "ok   $name"
  else
    failed=$((failed + 1))
    say "FAIL $name"
    return 1
  fi
}

# finish: cleans up, prints the count as the last line, exits 1 on a failure.
finish() {
  trap - EXIT
  cleanup
  echo "$passed passed, $failed failed"
  [ "$failed" -eq 0 ] || exit 1
  exit 0
}

if ! docker info >/dev/null 2>&1; then
  say "skipped: no docker engine"
  exit 0
fi

if docker compose version >/dev/null 2>&1; then
  compose=(docker compose)
elif command -v docker-compose >/dev/null; then
  compose=(docker-compose)
else
  say "skipped: no docker compose (neither the plugin nor docker-compose)"
  exit 0
fi
# Without the buildx plugin the classic builder is the one that works.
docker buildx version >/dev/null 2>&1 || export DOCKER_BUILDKIT=0 COMPOSE_DOCKER_CLI_BUILD=0

# port_free PORT: nothing listens on 127.0.0.1:PORT.
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# free_port FIRST: FIRST, or the next port above it nothing listens on.
free_port() {
  local p=$1
  while ! port_free "$p"; do p=$((p + 1)); done
  echo "$p"
}

reg_port=${SPEEDY_E2E_REGISTRY_PORT:-$(free_port 5000)}
master_port=$(free_port 18099)
timeout_s=${SPEEDY_E2E_TIMEOUT:-240}
repo_name="localhost:$reg_port/speedy-e2e/multi"
export SPEEDY_REGISTRY_PORT=$reg_port SPEEDY_MASTER_PORT=$master_port SPEEDY_IMAGE=$image
export SPEEDY_CHUNKS=2 SPEEDY_CHUNK_SIZE=64M
work=$(mktemp -d /tmp/speedy-e2e.XXXXXX)
had_image=0
docker image inspect "$image" >/dev/null 2>&1 && had_image=1

dc() { "${compose[@]}" -p "$project" -f "$repo/docker-compose.yml" "$@"; }

# prune_stale_builds: the untagged images earlier builds of Dockerfile left
# (labelled io.speedy.image): every old runtime image, and every build stage
# but the newest, which is the compile cache of the next build.
prune_stale_builds() {
  docker image ls -q --filter dangling=true --filter label=io.speedy.image=runtime |
    xargs -r docker rmi >/dev/null 2>&1
  docker image ls -q --filter dangling=true --filter label=io.speedy.image=build | tail -n +2 |
    xargs -r docker rmi >/dev/null 2>&1
}

cleanup() {
  docker rm -f speedy-e2e-export >/dev/null 2>&1
  docker image ls --format '{{.Repository}} {{.ID}}' | awk -v r="localhost:$reg_port/speedy-e2e/" \
    'index($1, r) == 1 {print $2}' | sort -u | xargs -r docker rmi -f >/dev/null 2>&1
  timeout 120 "${compose[@]}" -p "$project" -f "$repo/docker-compose.yml" down -v \
    --remove-orphans >"$work/down.log" 2>&1 || { say "compose down failed:"; tail -5 "$work/down.log"; }
  if [ "$had_image" -eq 0 ] && [ "${SPEEDY_E2E_KEEP_IMAGE:-0}" != 1 ]; then
    docker rmi "$image" >/dev/null 2>&1
  fi
  prune_stale_builds
  rm -rf "$work"
}
trap cleanup EXIT
# Interrupted or killed: exit, so that the EXIT trap cleans up.
trap 'exit 130' INT TERM

# ---- the cluster ------------------------------------------------------------
# service_health SERVICE: the health status of the service's container.
service_health() {
  local id
  id=$(dc ps -q "$1" 2>/dev/null) && [ -n "$id" ] || { echo missing; return; }
  docker inspect -f '{{if .State.Health}}{{.State.Health.Status}}{{else}}{{.State.Status}}{{end}}' "$id"
}

# cluster_healthy: every service healthy within the time limit.
cluster_healthy() {
  local deadline=$((SECONDS + timeout_s)) s all
  while [ "$SECONDS" -lt "$deadline" ]; do
    all=1
    for s in db master cs-1a cs-1b cs-2a cs-2b registry; do
      [ "$(service_health "$s")" = healthy ] || { all=0; break; }
    done
    [ "$all" -eq 1 ] && return 0
    sleep 2
  done
  for s in db master cs-1a cs-1b cs-2a cs-2b registry; do
    say "  $s: $(service_health "$s")"
    dc logs --tail=5 "$s" 2>&1 | sed 's/^/    /'
  done
  return 1
}

images_ready() {
  timeout 1800 "$repo/scripts/docker-images" >"$work/images.log" 2>&1 ||
    { tail -20 "$work/images.log"; return 1; }
}

cluster_up() {
  timeout 1800 "${compose[@]}" -p "$project" -f "$repo/docker-compose.yml" up -d --build \
    >"$work/up.log" 2>&1 || { tail -30 "$work/up.log"; return 1; }
}

started=$SECONDS
check "base images (scripts/docker-images)" images_ready || finish
check "docker compose up -d --build" cluster_up || finish
check "every service healthy within ${timeout_s}s" cluster_healthy || finish
say "cluster up in $((SECONDS - started)) s; registry on localhost:$reg_port"

# ---- a multi-layer image ----------------------------------------------------
# make_image: FROM scratch, three COPY layers of random bytes (4 KiB, 3 MiB:
# more than one 2 MiB piece, 9 MiB), and a config.
make_image() {
  local ctx="$work/ctx"
  mkdir -p "$ctx"
  head -c 4096 /dev/urandom >"$ctx/small.bin"
  head -c $((3 * 1024 * 1024 + 17)) /dev/urandom >"$ctx/medium.bin"
  head -c $((9 * 1024 * 1024)) /dev/urandom >"$ctx/large.bin"
  printf 'FROM scratch\nCOPY small.bin /data/small.bin\nCOPY medium.bin /data/medium.bin\nCOPY large.bin /data/large.bin\nLABEL org.opencontainers.image.title=speedy-e2e\n' \
    >"$ctx/Dockerfile"
  timeout 120 docker build -q -t "$repo_name:v1" "$ctx" >"$work/build.log" 2>&1 ||
    { cat "$work/build.log"; return 1; }
  [ "$(docker image inspect -f '{{len .RootFS.Layers}}' "$repo_name:v1")" = 3 ]
}

push() {
  timeout 300 docker push "$repo_name:v1" >"$work/push.log" 2>&1 || { tail -10 "$work/push.log"; return 1; }
}

# removed_locally: rmi leaves no image of that name or id behind.
removed_locally() {
  docker rmi "$repo_name:v1" >/dev/null || return 1
  ! docker image inspect "$image_id" >/dev/null 2>&1
}

pull() {
  timeout 300 docker pull "$1" >"$work/pull.log" 2>&1 || { tail -10 "$work/pull.log"; return 1; }
}

# same_layers REF: the pulled image's layer diff ids and config id are the
# pushed ones (each diff id is the sha256 of an uncompressed layer tar).
same_layers() {
  local got
  got=$(docker image inspect -f '{{.Id}} {{.RootFS.Layers}}' "$1") || return 1
  [ "$got" = "$image_id $layers" ] || { say "  pushed $image_id $layers"; say "  pulled $got"; return 1; }
}

# same_files REF: the image's filesystem holds exactly the three files.
same_files() {
  local out="$work/export" f
  rm -rf "$out"
  mkdir -p "$out"
  docker rm -f speedy-e2e-export >/dev/null 2>&1
  docker create --name speedy-e2e-export "$1" /none >/dev/null || return 1
  docker export speedy-e2e-export | tar -x -C "$out" || return 1
  docker rm -f speedy-e2e-export >/dev/null
  for f in small.bin medium.bin large.bin; do
    cmp -s "$work/ctx/$f" "$out/data/$f" || { say "  /data/$f differs"; return 1; }
  done
}

# tag_listed: the registry's tag list for the repository names v1.
tag_listed() {
  curl -fsS --max-time 5 "http://127.0.0.1:$reg_port/v2/speedy-e2e/multi/tags/list" | grep -q '"v1"'
}

check "build a 3-layer image FROM scratch" make_image || finish
image_id=$(docker image inspect -f '{{.Id}}' "$repo_name:v1")
layers=$(docker image inspect -f '{{.RootFS.Layers}}' "$repo_name:v1")
check "docker push $repo_name:v1" push || finish
digest=$(grep -o 'digest: sha256:[0-9a-f]*' "$work/push.log" | cut -d' ' -f2)
check "push reported a manifest digest" test -n "$digest"
check "tag list names v1" tag_listed
check "docker rmi removes it locally" removed_locally
check "docker pull by tag" pull "$repo_name:v1"
check "pulled layers byte-exact (diff ids, config)" same_layers "$repo_name:v1"
check "pulled files byte-exact (export, cmp)" same_files "$repo_name:v1"
check "pulled digest is the pushed one" \
  test "$(docker image inspect -f '{{join .RepoDigests " "}}' "$repo_name:v1")" = "$repo_name@$digest"
docker rmi "$repo_name:v1" >/dev/null 2>&1
check "docker pull by digest" pull "$repo_name@$digest"
check "pulled-by-digest layers byte-exact" same_layers "$repo_name@$digest"
say "done in $((SECONDS - started)) s"
finish
