# OCI grammar and documents (library spyoci): names, tags and the route split,
# digests and hashing (resumable SHA-256), Range headers and multipart framing,
# error bodies, manifest validation, the referrers index, pagination, the
# query string. Pure functions, no sockets; see docs/oci.md.
add_library(spyoci STATIC
  ${CMAKE_CURRENT_LIST_DIR}/oci_names.c
  ${CMAKE_CURRENT_LIST_DIR}/oci_digest.c
  ${CMAKE_CURRENT_LIST_DIR}/oci_sha256.c
  ${CMAKE_CURRENT_LIST_DIR}/oci_range.c
  ${CMAKE_CURRENT_LIST_DIR}/oci_errors.c
  ${CMAKE_CURRENT_LIST_DIR}/oci_manifest.c
  ${CMAKE_CURRENT_LIST_DIR}/oci_referrers.c
  ${CMAKE_CURRENT_LIST_DIR}/oci_page.c
  ${CMAKE_CURRENT_LIST_DIR}/oci_query.c
)
target_link_libraries(spyoci PUBLIC spycommon PkgConfig::JANSSON PkgConfig::OPENSSL)
