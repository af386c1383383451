# Unit tests of the OCI grammar and document modules (library spyoci).
foreach(t names digest sha256 range errors manifest page)
  spy_unit_test(test_oci_${t} ${CMAKE_CURRENT_LIST_DIR}/test_oci_${t}.c)
  target_link_libraries(test_oci_${t} spyoci)
endforeach()
