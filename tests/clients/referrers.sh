# tests/clients/referrers.sh - an artifact with a subject. No Debian client
# pushes one (oras is not packaged), so it is built by hand and sent with
# curl: an OCI image manifest with artifactType, the empty config, one
# layer, and "subject" naming the image skopeo pushed. Then the referrers
# API must list it (and filter it), skopeo must read it back byte-exact, and
# after skopeo delete it must be gone from the list. Sourced by run.sh;
# runs after run_skopeo (needs speedy-test/skopeo:v1).

readonly ARTIFACT_TYPE=application/vnd.speedy.test.sbom+json
readonly OCI_EMPTY=application/vnd.oci.empty.v1+json

run_referrers() {
  section referrers
  local name=speedy-test/skopeo
  if [ "$(http_code HEAD "http://$reg/v2/$name/manifests/$single_digest" -H "Accept: $OCI_MANIFEST")" != 200 ]; then
    skip "artifact with a subject" "speedy-test/skopeo:v1 is not in the registry (skopeo section)"
    return 0
  fi
  referrers_make
  check "push an artifact manifest whose subject is speedy-test/skopeo:v1 (curl)" \
    referrers_push "$name"
  if [ "$(http_code GET "http://$reg/v2/$name/referrers/$single_digest")" = 404 ]; then
    skip "referrers API lists the artifact" "this registry has no referrers API (404)"
    return 0
  fi
  check "GET /v2/<name>/referrers/<subject> lists it with its artifactType" \
    referrers_listed "$name" "" yes
  check "?artifactType= filters: its type lists it, another type does not" referrers_filter "$name"
  if have skopeo skopeo; then
    check "skopeo reads the artifact back byte-exact (inspect --raw by digest)" \
      referrers_read "$name"
    check "skopeo delete of the artifact removes it from the referrers list" \
      referrers_delete "$name"
  fi
}

# blob_push NAME FILE: a monolithic upload (POST, then PUT with the bytes).
blob_push() {
  local name=$1 file=$2 location code
  location=$(curl -sS --max-time 30 -D - -o /dev/null -X POST "http://$reg/v2/$name/blobs/uploads/" |
    tr -d '\r' | sed -n 's/^[Ll]ocation: //p')
  [ -n "$location" ] || fail "POST /v2/$name/blobs/uploads/ gave no Location"
  case "$location" in http*) ;; *) location="http://$reg$location" ;; esac
  case "$location" in *\?*) location+="&" ;; *) location+="?" ;; esac
  code=$(http_code PUT "${location}digest=$(sha256_of "$file")" \
    -H 'Content-Type: application/octet-stream' --data-binary "@$file")
  same_text "PUT upload of $file" 201 "$code"
}

# referrers_make: writes the artifact (empty config, payload, manifest) and
# sets artifact_digest; runs outside a check so the variables persist.
referrers_make() {
  artifact="$tmp/artifact"
  mkdir -p "$artifact"
  printf '{}' >"$artifact/empty"
  printf '{"speedy-test":"sbom %s"}' "$RANDOM$RANDOM" >"$artifact/payload"
  printf '{"schemaVersion":2,"mediaType":"%s","artifactType":"%s","config":{"mediaType":"%s","digest":"%s","size":2},"layers":[{"mediaType":"%s","digest":"%s","size":%s}],"subject":{"mediaType":"%s","digest":"%s","size":%s},"annotations":{"org.opencontainers.image.created":"1970-01-01T00:00:00Z"}}' \
    "$OCI_MANIFEST" "$ARTIFACT_TYPE" "$OCI_EMPTY" "$(sha256_of "$artifact/empty")" \
    "$ARTIFACT_TYPE" "$(sha256_of "$artifact/payload")" "$(stat -c %s "$artifact/payload")" \
    "$OCI_MANIFEST" "$single_digest" "$single_size" >"$artifact/manifest"
  artifact_digest=$(sha256_of "$artifact/manifest")
}

# referrers_push NAME: uploads the empty config and the payload, then PUTs
# the manifest by digest; the registry must answer 201 (and, if it supports
# subjects, OCI-Subject naming the subject).
referrers_push() {
  local name=$1 headers="$artifact/put.headers" code subject
  blob_push "$name" "$artifact/empty"
  blob_push "$name" "$artifact/payload"
  code=$(curl -sS --max-time 30 -o /dev/null -D "$headers" -w '%{http_code}' -X PUT \
    -H "Content-Type: $OCI_MANIFEST" --data-binary "@$artifact/manifest" \
    "http://$reg/v2/$name/manifests/$artifact_digest")
  cat "$headers"
  same_text "PUT manifest status" 201 "$code"
  subject=$(tr -d '\r' <"$headers" | sed -n 's/^[Oo][Cc][Ii]-[Ss]ubject: //p')
  [ -z "$subject" ] || same_text "OCI-Subject header" "$single_digest" "$subject"
}

# referrers_listed NAME QUERY yes|no: the referrers index of the subject
# (with QUERY appended) does or does not list the artifact.
referrers_listed() {
  local name=$1 query=$2 want=$3 out="$artifact/referrers.json" headers="$artifact/referrers.headers"
  local code type found
  code=$(curl -sS --max-time 30 -o "$out" -D "$headers" -w '%{http_code}' \
    "http://$reg/v2/$name/referrers/$single_digest$query")
  cat "$headers" "$out"
  echo
  same_text "referrers status" 200 "$code"
  type=$(tr -d '\r' <"$headers" | sed -n 's/^[Cc]ontent-[Tt]ype: //p')
  same_text "referrers Content-Type" "$OCI_INDEX" "$type"
  found=$(jq -r --arg d "$artifact_digest" --arg t "$ARTIFACT_TYPE" --argjson s "$(stat -c %s "$artifact/manifest")" \
    '[.manifests[] | select(.digest == $d and .artifactType == $t and .size == $s)] | length' "$out")
  if [ "$want" = yes ]; then
    same_text "entries for the artifact" 1 "$found"
  else
    same_text "entries for the artifact" 0 "$found"
  fi
}

referrers_filter() {
  local name=$1 applied
  referrers_listed "$name" "?artifactType=${ARTIFACT_TYPE/+/%2B}" yes
  applied=$(tr -d '\r' <"$artifact/referrers.headers" | sed -n 's/^[Oo][Cc][Ii]-[Ff]ilters-[Aa]pplied: //p')
  same_text "OCI-Filters-Applied" artifactType "$applied"
  referrers_listed "$name" "?artifactType=application/vnd.speedy.other" no
}

referrers_read() {
  sk inspect --raw --tls-verify=false "docker://$reg/$1@$artifact_digest" >"$artifact/read-back"
  same_bytes "artifact manifest" "$artifact/manifest" "$artifact/read-back"
}

referrers_delete() {
  sk delete --tls-verify=false "docker://$reg/$1@$artifact_digest"
  referrers_listed "$1" "" no
}
