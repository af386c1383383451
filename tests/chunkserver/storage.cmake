# Storage engine tests: record format, index, recovery, the store API.
# Included from tests/chunkserver/CMakeLists.txt.
add_library(spystore_testutil STATIC ${CMAKE_CURRENT_LIST_DIR}/storage_testutil.c)
target_link_libraries(spystore_testutil spystore PkgConfig::CMOCKA)

spy_unit_test(test_record ${CMAKE_CURRENT_LIST_DIR}/test_record.c)
target_link_libraries(test_record spystore)

spy_unit_test(test_index ${CMAKE_CURRENT_LIST_DIR}/test_index.c)
target_link_libraries(test_index spystore)

spy_unit_test(test_recover ${CMAKE_CURRENT_LIST_DIR}/test_recover.c)
target_link_libraries(test_recover spystore_testutil spystore)

spy_unit_test(test_store ${CMAKE_CURRENT_LIST_DIR}/test_store.c)
target_link_libraries(test_store spystore_testutil spystore)
