# The OCI grammar and document modules, built again with coverage so
# libFuzzer can steer into them (the regular spyoci library is not
# instrumented). One target per parser family; seeds in corpus/oci_<name>/.
add_library(spyoci_fuzz STATIC
  ${CMAKE_CURRENT_LIST_DIR}/../registry/oci_names.c
  ${CMAKE_CURRENT_LIST_DIR}/../registry/oci_digest.c
  ${CMAKE_CURRENT_LIST_DIR}/../registry/oci_sha256.c
  ${CMAKE_CURRENT_LIST_DIR}/../registry/oci_range.c
  ${CMAKE_CURRENT_LIST_DIR}/../registry/oci_errors.c
  ${CMAKE_CURRENT_LIST_DIR}/../registry/oci_manifest.c
  ${CMAKE_CURRENT_LIST_DIR}/../registry/oci_referrers.c
  ${CMAKE_CURRENT_LIST_DIR}/../registry/oci_page.c
  ${CMAKE_CURRENT_LIST_DIR}/../registry/oci_query.c
)
target_compile_options(spyoci_fuzz PRIVATE -fsanitize=fuzzer-no-link,address,undefined)
target_link_libraries(spyoci_fuzz PUBLIC spycommon PkgConfig::JANSSON PkgConfig::OPENSSL)

foreach(t names range digest manifest)
  spy_fuzz_target(fuzz_oci_${t} ${CMAKE_CURRENT_LIST_DIR}/fuzz_oci_${t}.c)
  target_link_libraries(fuzz_oci_${t} spyoci_fuzz)
endforeach()
