# tests/clients/skopeo.sh - skopeo round trips: the locally made image and
# index copied into the registry and back, byte-exact (--preserve-digests:
# skopeo must not convert anything), inspect, copies inside the registry
# (a second tag; another repository, which mounts the blobs), list-tags and
# delete. Sourced by run.sh.

# sk ARGS...: skopeo with this run's policy and a time limit.
sk() {
  timeout 60 skopeo --policy "$policy" "$@"
}

run_skopeo() {
  section skopeo
  have skopeo skopeo || return 0
  local r="docker://$reg/speedy-test/skopeo"
  check "copy a 3-layer OCI image in (oci: -> docker://)" \
    sk copy --preserve-digests --dest-tls-verify=false "oci:$images/single:v1" "$r:v1"
  check "copy it back to a new OCI layout, manifest and every blob byte-exact" \
    skopeo_back "$r:v1" "$tmp/skopeo-back" "$images/single" "$single_digest"
  check "inspect: digest, architecture, layers; --raw is the manifest's bytes" \
    skopeo_inspect "$r:v1"
  check "copy inside the registry: a second tag, and another repository (blob mount)" \
    skopeo_copies "$r"
  check "list-tags names v1 and v2" skopeo_tags "$r" v1,v2
  check "delete the other repository's image: gone there, intact here" skopeo_delete "$r"

  section "skopeo index"
  local i="docker://$reg/speedy-test/skopeo-index"
  check "copy --all a two-platform index in" \
    sk copy --all --preserve-digests --dest-tls-verify=false "oci:$images/multi:v1" "$i:v1"
  check "copy --all it back, index and every blob byte-exact" \
    skopeo_back "$i:v1" "$tmp/skopeo-index-back" "$images/multi" "$index_digest" --all
  check "inspect --raw is the index's bytes; --override-arch arm64 picks its layers" \
    skopeo_inspect_index "$i:v1"
  check "list-tags names v1" skopeo_tags "$i" v1
  check "delete the index: tag and digest answer 404" skopeo_delete_index "$i"
}

# skopeo_back SRC DIR ORIGINAL DIGEST [--all]: copies SRC to oci:DIR:v1 and
# compares it with the ORIGINAL layout.
skopeo_back() {
  local src=$1 dir=$2 original=$3 digest=$4
  shift 4
  sk copy "$@" --preserve-digests --src-tls-verify=false "$src" "oci:$dir:v1"
  same_text "manifest digest pulled back" "$digest" "$(oci_top "$dir" v1)"
  oci_same_blobs "$original" "$dir"
}

skopeo_inspect() {
  local out="$tmp/skopeo-inspect.json"
  sk inspect --tls-verify=false "$1" >"$out"
  same_text Digest "$single_digest" "$(jq -r .Digest "$out")"
  same_text Architecture amd64 "$(jq -r .Architecture "$out")"
  same_text "layer count" 3 "$(jq -r '.Layers | length' "$out")"
  sk inspect --raw --tls-verify=false "$1" >"$tmp/skopeo-raw"
  same_bytes "raw manifest" "$(oci_blob_path "$images/single" "$single_digest")" "$tmp/skopeo-raw"
}

skopeo_copies() {
  local r=$1 other="docker://$reg/speedy-test/skopeo-other"
  sk copy --preserve-digests --src-tls-verify=false --dest-tls-verify=false "$r:v1" "$r:v2"
  sk copy --preserve-digests --src-tls-verify=false --dest-tls-verify=false "$r:v1" "$other:v1"
  same_text "v2 digest" "$single_digest" "$(sk inspect --tls-verify=false "$r:v2" | jq -r .Digest)"
  same_text "other repository's digest" "$single_digest" \
    "$(sk inspect --tls-verify=false "$other:v1" | jq -r .Digest)"
}

# skopeo_tags REF WANTED: list-tags of REF is exactly WANTED (a,b,... sorted).
skopeo_tags() {
  same_text "tags of $1" "$2" \
    "$(sk list-tags --tls-verify=false "$1" | jq -r '.Tags | sort | join(",")')"
}

# skopeo_delete REF: deletes the copy in speedy-test/skopeo-other; the same
# manifest in REF must still pull whole.
skopeo_delete() {
  local other="docker://$reg/speedy-test/skopeo-other"
  sk delete --tls-verify=false "$other:v1"
  if sk inspect --raw --tls-verify=false "$other:v1" >"$tmp/skopeo-deleted" 2>&1; then
    fail "$other:v1 still answers after delete"
  fi
  grep -qi 'manifest unknown\|not found' "$tmp/skopeo-deleted" ||
    fail "unexpected error after delete: $(cat "$tmp/skopeo-deleted")"
  skopeo_back "$1:v1" "$tmp/skopeo-after-delete" "$images/single" "$single_digest"
}

skopeo_inspect_index() {
  sk inspect --raw --tls-verify=false "$1" >"$tmp/skopeo-index-raw"
  same_bytes "raw index" "$(oci_blob_path "$images/multi" "$index_digest")" "$tmp/skopeo-index-raw"
  sk inspect --override-arch arm64 --override-os linux --tls-verify=false "$1" >"$tmp/skopeo-arm64.json"
  same_text "arm64 architecture" arm64 "$(jq -r .Architecture "$tmp/skopeo-arm64.json")"
  same_text "arm64 layers" "$(jq -r '[.layers[].digest] | join(",")' "$(oci_blob_path "$images/multi" "$arm64_digest")")" \
    "$(jq -r '.Layers | join(",")' "$tmp/skopeo-arm64.json")"
}

skopeo_delete_index() {
  local name=${1#docker://"$reg"/}
  sk delete --tls-verify=false "$1:v1"
  same_text "GET by tag after delete" 404 \
    "$(http_code GET "http://$reg/v2/$name/manifests/v1" -H "Accept: $OCI_INDEX")"
  same_text "GET by digest after delete" 404 \
    "$(http_code GET "http://$reg/v2/$name/manifests/$index_digest" -H "Accept: $OCI_INDEX")"
}
