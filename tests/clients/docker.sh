# tests/clients/docker.sh - docker push/pull through this machine's Docker
# engine (skipped when `docker info` fails). The engine cannot pull from the
# internet, so the image is a FROM scratch build of three COPY layers of
# random files. Docker treats 127.0.0.0/8 as an insecure registry by
# default, so any 127.0.0.1:PORT works without configuring the daemon.
# Every image made here is named $reg/speedy-test/* and removed in
# docker_cleanup. Sourced by run.sh.

docker_used=0

# dk ARGS...: docker with a time limit.
dk() {
  timeout 60 docker "$@"
}

run_docker() {
  section docker
  have docker docker.io || return 0
  if ! timeout 20 docker info >"$logs/docker-info.log" 2>&1; then
    skip "docker round trips" "no Docker engine answers (docker info failed)"
    return 0
  fi
  docker_used=1
  local img="$reg/speedy-test/docker:v1"
  check "build FROM scratch with 3 COPY layers of random files" docker_build "$img"
  check "push; the registry serves the digest docker printed" docker_push "$img"
  check "rmi, pull back: same image ID and digest, files byte-exact (docker save)" \
    docker_pull_back "$img"
}

docker_build() {
  local ctx="$tmp/docker-ctx"
  random_context "$ctx"
  printf 'FROM scratch\nCOPY files/a /speedy-test/a\nCOPY files/b /speedy-test/b\nCOPY files/c /speedy-test/c\n' \
    >"$ctx/Dockerfile"
  # The classic builder stores the image in the engine directly and needs
  # no BuildKit or buildx plugin.
  DOCKER_BUILDKIT=0 dk build -t "$1" "$ctx"
  same_text "layers of $1" 3 "$(dk image inspect -f '{{len .RootFS.Layers}}' "$1")"
}

docker_push() {
  local name=${1#"$reg"/}
  dk push "$1" | tee "$tmp/docker-push.out"
  sed -n 's/.*digest: \(sha256:[0-9a-f]*\).*/\1/p' "$tmp/docker-push.out" >"$tmp/docker.digest"
  [ -s "$tmp/docker.digest" ] || fail "docker push printed no digest"
  registry_has_digest "${name%:v1}" v1 "$(cat "$tmp/docker.digest")"
}

docker_pull_back() {
  local img=$1 id layer
  id=$(dk image inspect -f '{{.Id}}' "$img")
  dk rmi "$img"
  if dk image inspect "$img" >/dev/null 2>&1; then fail "$img still exists after rmi"; fi
  dk pull "$img" | tee "$tmp/docker-pull.out"
  grep -q "Digest: $(cat "$tmp/docker.digest")" "$tmp/docker-pull.out" ||
    fail "docker pull did not report digest $(cat "$tmp/docker.digest")"
  same_text "image ID after pull" "$id" "$(dk image inspect -f '{{.Id}}' "$img")"
  mkdir -p "$tmp/docker-save/rootfs"
  dk save "$img" | tar -C "$tmp/docker-save" -xf -
  for layer in $(jq -r '.[0].Layers[]' "$tmp/docker-save/manifest.json"); do
    tar -C "$tmp/docker-save/rootfs" -xf "$tmp/docker-save/$layer"
  done
  same_tree "files of the pulled image" "$tmp/docker-ctx/files" "$tmp/docker-save/rootfs/speedy-test"
}

# docker_cleanup: removes the engine's images of this run ($reg/speedy-test/*).
docker_cleanup() {
  [ "$docker_used" = 1 ] || return 0
  local images
  images=$(docker images --format '{{.Repository}}:{{.Tag}}' 2>/dev/null | grep "^$reg/speedy-test/" || true)
  [ -z "$images" ] || echo "$images" | xargs docker rmi -f >/dev/null 2>&1 || true
  docker_used=0
}
