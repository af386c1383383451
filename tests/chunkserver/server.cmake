# spy_server: memory pool, HTTP client, connection handler, reporter, and the
# daemon's flags (that one starts the binary: label integration).
add_library(srvtest STATIC srvtest.c)
target_link_libraries(srvtest spyserver PkgConfig::CMOCKA)

spy_unit_test(test_mempool test_mempool.c)
target_link_libraries(test_mempool spyserver)

spy_unit_test(test_httpc test_httpc.c)
target_link_libraries(test_httpc spycommon)

spy_unit_test(test_server test_server.c)
target_link_libraries(test_server srvtest spyserver PkgConfig::JANSSON)

spy_unit_test(test_reporter test_reporter.c)
target_link_libraries(test_reporter srvtest spyserver PkgConfig::JANSSON)

add_test(NAME test_spy_server_flags
         COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/test_main_flags.sh $<TARGET_FILE:spy_server>)
set_tests_properties(test_spy_server_flags PROPERTIES LABELS integration TIMEOUT 120)
