# tests/clients/podman.sh - podman round trips: an image built FROM scratch
# with three COPY layers of random files is pushed, removed, pulled back
# (same image ID, the digest podman pushed, files byte-exact); then a
# manifest list of an amd64 and an arm64 build goes out with
# `manifest push --all` and each platform pulls back. Storage is the run's
# private vfs store (containers.sh). Sourced by run.sh.

# pm ARGS...: podman with a time limit.
pm() {
  timeout 60 podman "$@"
}

run_podman() {
  section podman
  have podman podman || return 0
  local src=localhost/speedy-test/podman-src:v1 dst="$reg/speedy-test/podman:v1"
  check "build FROM scratch with 3 COPY layers of random files" \
    podman_build amd64 "$src" "$tmp/podman-ctx"
  check "push (--digestfile); the registry serves that digest" podman_push "$src" "$dst"
  check "rmi, pull back: same image ID and digest, files byte-exact" \
    podman_pull_back "$src" "$dst" "$tmp/podman-ctx"

  section "podman manifest"
  local list=localhost/speedy-test/podman-list:v1 ldst="$reg/speedy-test/podman-list:v1"
  check "build an amd64 and an arm64 image" podman_build_pair
  check "manifest create, add both (containers-storage:)" podman_list_create "$list"
  check "manifest push --all; the registry serves a two-platform list" \
    podman_list_push "$list" "$ldst"
  check "rmi both, pull --arch each from the list: same image IDs, files byte-exact" podman_list_pull "$ldst"
}

# podman_build ARCH TAG CONTEXT: a FROM scratch image of three layers.
podman_build() {
  local arch=$1 tag=$2 ctx=$3
  random_context "$ctx"
  printf 'FROM scratch\nCOPY files/a /speedy-test/a\nCOPY files/b /speedy-test/b\nCOPY files/c /speedy-test/c\n' \
    >"$ctx/Containerfile"
  pm build --arch "$arch" --layers -t "$tag" -f "$ctx/Containerfile" "$ctx"
  same_text "layers of $tag" 3 "$(pm image inspect --format '{{len .RootFS.Layers}}' "$tag")"
  same_text "architecture of $tag" "$arch" "$(pm image inspect --format '{{.Architecture}}' "$tag")"
}

podman_push() {
  pm push --tls-verify=false --digestfile "$tmp/podman.digest" "$1" "docker://$2"
  local name=${2#"$reg"/}
  registry_has_digest "${name%:v1}" v1 "$(cat "$tmp/podman.digest")"
}

# podman_pull_back SRC DST CONTEXT: removes SRC, pulls DST, compares.
podman_pull_back() {
  local src=$1 dst=$2 ctx=$3 id got mnt
  id=$(pm image inspect --format '{{.Id}}' "$src")
  pm rmi "$src"
  pm image exists "$src" && fail "$src still exists after rmi"
  got=$(pm pull --quiet --tls-verify=false "docker://$dst" | tail -n 1)
  same_text "image ID after pull" "$id" "$got"
  same_text "digest after pull" "$(cat "$tmp/podman.digest")" \
    "$(pm image inspect --format '{{.Digest}}' "$dst")"
  mnt=$(pm image mount "$dst")
  same_tree "pulled files" "$ctx/files" "$mnt/speedy-test"
  pm image unmount "$dst"
}

podman_build_pair() {
  podman_build amd64 localhost/speedy-test/podman-list-amd64:v1 "$tmp/podman-amd64"
  podman_build arm64 localhost/speedy-test/podman-list-arm64:v1 "$tmp/podman-arm64"
}

podman_list_create() {
  pm manifest create "$1"
  pm manifest add "$1" containers-storage:localhost/speedy-test/podman-list-amd64:v1
  pm manifest add "$1" containers-storage:localhost/speedy-test/podman-list-arm64:v1
  pm manifest inspect "$1"
}

podman_list_push() {
  local out="$tmp/podman-list.json" name=${2#"$reg"/}
  name=${name%:v1}
  pm manifest push --all --tls-verify=false --digestfile "$tmp/podman-list.digest" "$1" "docker://$2"
  registry_has_digest "$name" v1 "$(cat "$tmp/podman-list.digest")"
  registry_manifest "$name" v1 "$out"
  cat "$out"
  same_text "platforms in the list" amd64,arm64 \
    "$(jq -r '[.manifests[].platform.architecture] | sort | join(",")' "$out")"
}

podman_list_pull() {
  local arch id got mnt
  for arch in amd64 arm64; do
    id=$(pm image inspect --format '{{.Id}}' "localhost/speedy-test/podman-list-$arch:v1")
    pm rmi "localhost/speedy-test/podman-list-$arch:v1"
    got=$(pm pull --quiet --tls-verify=false --arch "$arch" "docker://$1" | tail -n 1)
    same_text "image ID of $arch pulled from the list" "$id" "$got"
    mnt=$(pm image mount "$got")
    same_tree "pulled $arch files" "$tmp/podman-$arch/files" "$mnt/speedy-test"
    pm image unmount "$got"
  done
}
