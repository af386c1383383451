# Client-side tests: spy_client and chunktool.
#  test_client_proto (unit): spy_client against a scripted fake server.
#  test_client, test_chunktool (integration): against a real spy_server.
spy_unit_test(test_client_proto test_client_proto.c)
target_link_libraries(test_client_proto spycommon Threads::Threads)

add_executable(test_client test_client.c)
target_link_libraries(test_client spycommon PkgConfig::CMOCKA)
add_dependencies(test_client spy_server)
add_test(NAME test_client COMMAND test_client $<TARGET_FILE:spy_server>)
set_tests_properties(test_client PROPERTIES LABELS integration TIMEOUT 180)

add_test(NAME test_chunktool
         COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/test_chunktool.sh $<TARGET_FILE:chunktool>
                 $<TARGET_FILE:spy_server>)
set_tests_properties(test_chunktool PROPERTIES LABELS integration TIMEOUT 120)
