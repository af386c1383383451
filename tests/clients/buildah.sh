# tests/clients/buildah.sh - buildah round trip: `buildah build --layers` of
# a FROM scratch Containerfile with three ADD layers of random files, push
# (--digestfile), rmi, pull back: same image ID, and the files read through
# a working container's mount are byte-exact. Sourced by run.sh.

# bd ARGS...: buildah with a time limit.
bd() {
  timeout 60 buildah "$@"
}

run_buildah() {
  section buildah
  have buildah buildah || return 0
  local src=localhost/speedy-test/buildah-src:v1 dst="$reg/speedy-test/buildah:v1"
  check "build FROM scratch with 3 ADD layers of random files" buildah_build "$src"
  check "push (--digestfile); the registry serves that digest" buildah_push "$src" "$dst"
  check "rmi, pull back: same image ID, files byte-exact in a container" \
    buildah_pull_back "$src" "$dst"
}

buildah_build() {
  local ctx="$tmp/buildah-ctx"
  random_context "$ctx"
  printf 'FROM scratch\nADD files/a /speedy-test/a\nADD files/b /speedy-test/b\nADD files/c /speedy-test/c\n' \
    >"$ctx/Containerfile"
  bd build --layers -t "$1" -f "$ctx/Containerfile" "$ctx"
  same_text "layers of $1" 3 "$(bd inspect --type image --format '{{len .OCIv1.RootFS.DiffIDs}}' "$1")"
}

buildah_push() {
  local name=${2#"$reg"/}
  bd push --tls-verify=false --digestfile "$tmp/buildah.digest" "$1" "docker://$2"
  registry_has_digest "${name%:v1}" v1 "$(cat "$tmp/buildah.digest")"
}

buildah_pull_back() {
  local src=$1 dst=$2 id got ctr mnt
  id=$(bd inspect --type image --format '{{.FromImageID}}' "$src")
  bd rmi "$src"
  got=$(bd pull --quiet --tls-verify=false "docker://$dst" | tail -n 1)
  same_text "image ID after pull" "$id" "$got"
  ctr=$(bd from --pull=never "$dst")
  mnt=$(bd mount "$ctr")
  same_tree "files in the container" "$tmp/buildah-ctx/files" "$mnt/speedy-test"
  bd umount "$ctr"
  bd rm "$ctr"
}
