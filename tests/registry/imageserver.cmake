# The imageserver's router and handlers (uploads excepted: uploads.cmake)
# against a whole local cluster started with scripts/cluster in a temp dir on
# free ports (label "integration"; needs MariaDB, see scripts/install).
if(EXISTS ${CMAKE_SOURCE_DIR}/registry/imageserver.cmake
   AND EXISTS ${CMAKE_SOURCE_DIR}/chunkmaster/CMakeLists.txt)
  add_executable(test_imageserver test_imageserver.c imgtest.c)
  target_link_libraries(test_imageserver
    PkgConfig::CMOCKA PkgConfig::JANSSON PkgConfig::OPENSSL)
  add_dependencies(test_imageserver imageserver chunkmaster spy_server chunktool)
  add_test(NAME test_imageserver COMMAND test_imageserver)
  set_tests_properties(test_imageserver PROPERTIES
    LABELS integration TIMEOUT 300
    ENVIRONMENT "SPY_SOURCE_DIR=${CMAKE_SOURCE_DIR};SPY_BUILD_DIR=${CMAKE_BINARY_DIR}")
endif()
