# tests/clients/oci.sh - makes OCI image layouts from nothing (no image is
# ever pulled from the internet): random-content layers (gzip'd tars), an
# image config, image manifests and a multi-arch image index, written byte
# by byte so the test knows every digest before any client touches them.
# Sourced by run.sh; needs lib.sh (sha256_of).

readonly OCI_MANIFEST=application/vnd.oci.image.manifest.v1+json
readonly OCI_INDEX=application/vnd.oci.image.index.v1+json
readonly OCI_CONFIG=application/vnd.oci.image.config.v1+json
readonly OCI_LAYER_GZIP=application/vnd.oci.image.layer.v1.tar+gzip

# oci_init DIR: an empty image layout (oci-layout file, blobs/sha256/).
oci_init() {
  mkdir -p "$1/blobs/sha256"
  printf '{"imageLayoutVersion":"1.0.0"}' >"$1/oci-layout"
}

# oci_put DIR FILE: moves FILE into DIR's blobs; prints "DIGEST SIZE".
oci_put() {
  local digest
  digest=$(sha256_of "$2")
  mv "$2" "$1/blobs/sha256/${digest#sha256:}"
  echo "$digest $(stat -c %s "$1/blobs/sha256/${digest#sha256:}")"
}

# oci_blob_path DIR DIGEST: where DIR keeps the blob DIGEST.
oci_blob_path() {
  echo "$1/blobs/sha256/${2#sha256:}"
}

# oci_random_layer DIR SIZE...: a layer with one file of random bytes per
# SIZE (unique names under /speedy-test/), tarred reproducibly and gzip'd;
# prints "DIGEST SIZE DIFF_ID".
oci_random_layer() {
  local dir=$1 stage size i=0 diff_id
  shift
  stage=$(mktemp -d "$dir/.stage.XXXXXX")
  mkdir -p "$stage/root/speedy-test"
  for size in "$@"; do
    head -c "$size" /dev/urandom >"$stage/root/speedy-test/${stage##*.}-$i"
    i=$((i + 1))
  done
  tar -C "$stage/root" --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 \
    -cf "$stage/layer.tar" .
  diff_id=$(sha256_of "$stage/layer.tar")
  gzip -n -c "$stage/layer.tar" >"$stage/layer.tar.gz"
  echo "$(oci_put "$dir" "$stage/layer.tar.gz") $diff_id"
  rm -rf "$stage"
}

# oci_image DIR ARCH: an image for linux/ARCH with three layers: one of
# 3 MiB + 12345 bytes (it crosses the registry's 1 MiB buffers and 2 MiB
# pieces), one with a 70000-byte and a 1-byte file, one of 4 KiB. Writes the
# config and the manifest as blobs; prints the manifest's "DIGEST SIZE".
oci_image() {
  local dir=$1 arch=$2 layers=() diff_ids=() digest size diff_id spec
  for spec in "3158073" "70000 1" "4096"; do
    # shellcheck disable=SC2086 # spec is a list of sizes
    read -r digest size diff_id < <(oci_random_layer "$dir" $spec)
    layers+=("{\"mediaType\":\"$OCI_LAYER_GZIP\",\"digest\":\"$digest\",\"size\":$size}")
    diff_ids+=("\"$diff_id\"")
  done
  printf '{"created":"1970-01-01T00:00:00Z","architecture":"%s","os":"linux","config":{"Env":["SPEEDY_TEST=%s"]},"rootfs":{"type":"layers","diff_ids":[%s]}}' \
    "$arch" "$RANDOM$RANDOM" "$(IFS=,; echo "${diff_ids[*]}")" >"$dir/.config"
  read -r digest size < <(oci_put "$dir" "$dir/.config")
  printf '{"schemaVersion":2,"mediaType":"%s","config":{"mediaType":"%s","digest":"%s","size":%s},"layers":[%s]}' \
    "$OCI_MANIFEST" "$OCI_CONFIG" "$digest" "$size" "$(IFS=,; echo "${layers[*]}")" >"$dir/.manifest"
  oci_put "$dir" "$dir/.manifest"
}

# oci_index DIR "DIGEST SIZE ARCH"...: an image index over image manifests
# of DIR, one per platform linux/ARCH; prints its "DIGEST SIZE".
oci_index() {
  local dir=$1 entries=() digest size arch
  shift
  for entry in "$@"; do
    read -r digest size arch <<<"$entry"
    entries+=("{\"mediaType\":\"$OCI_MANIFEST\",\"digest\":\"$digest\",\"size\":$size,\"platform\":{\"architecture\":\"$arch\",\"os\":\"linux\"}}")
  done
  printf '{"schemaVersion":2,"mediaType":"%s","manifests":[%s]}' \
    "$OCI_INDEX" "$(IFS=,; echo "${entries[*]}")" >"$dir/.index"
  oci_put "$dir" "$dir/.index"
}

# oci_tag DIR MEDIA_TYPE DIGEST SIZE TAG: makes index.json name that one
# manifest (or index) TAG, as skopeo's oci:DIR:TAG expects.
oci_tag() {
  printf '{"schemaVersion":2,"manifests":[{"mediaType":"%s","digest":"%s","size":%s,"annotations":{"org.opencontainers.image.ref.name":"%s"}}]}' \
    "$2" "$3" "$4" "$5" >"$1/index.json"
}

# oci_same_blobs DIR1 DIR2: every blob of DIR1 is in DIR2, byte for byte.
oci_same_blobs() {
  local blob n=0
  for blob in "$1"/blobs/sha256/*; do
    same_bytes "blob sha256:${blob##*/}" "$blob" "$2/blobs/sha256/${blob##*/}" || return 1
    n=$((n + 1))
  done
  echo "$n blobs identical"
}

# oci_top DIR TAG: the "DIGEST" index.json of DIR names TAG.
oci_top() {
  jq -r --arg t "$2" '.manifests[] | select(.annotations["org.opencontainers.image.ref.name"] == $t) | .digest' \
    "$1/index.json"
}

# make_images: the test images every section starts from, under $images:
#   single/  one linux/amd64 image tagged v1 (single_digest, single_size)
#   multi/   an index over linux/amd64 and linux/arm64 images tagged v1
#            (index_digest, index_size; arm64_digest is one of its manifests)
make_images() {
  local amd64 arm64
  oci_init "$images/single"
  read -r single_digest single_size < <(oci_image "$images/single" amd64)
  oci_tag "$images/single" "$OCI_MANIFEST" "$single_digest" "$single_size" v1
  oci_init "$images/multi"
  amd64=$(oci_image "$images/multi" amd64)
  arm64=$(oci_image "$images/multi" arm64)
  arm64_digest=${arm64%% *}
  read -r index_digest index_size < <(oci_index "$images/multi" "$amd64 amd64" "$arm64 arm64")
  oci_tag "$images/multi" "$OCI_INDEX" "$index_digest" "$index_size" v1
}
