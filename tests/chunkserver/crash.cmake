# Crash tests (label "integration"): kill -9 a real spy_server while puts are
# in flight, restart it on the same data dir and check every acknowledged put
# and delete (see crash_test.c). One test per --sync mode.
add_executable(crash_test crash_test.c)
target_link_libraries(crash_test spycommon PkgConfig::CMOCKA Threads::Threads)
add_dependencies(crash_test spy_server)
foreach(sync 0 1)
  add_test(NAME crash_sync${sync}
           COMMAND crash_test --server=$<TARGET_FILE:spy_server> --sync=${sync})
  set_tests_properties(crash_sync${sync} PROPERTIES LABELS integration TIMEOUT 180)
endforeach()

# The crash test must be able to fail: damage the data between the kill and
# the restart and expect crash_test to report a VIOLATION.
foreach(mode corrupt lose)
  add_test(NAME crash_sabotage_${mode}
           COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/crash_sabotage.sh $<TARGET_FILE:crash_test>
                   $<TARGET_FILE:spy_server> ${mode})
  set_tests_properties(crash_sabotage_${mode} PROPERTIES LABELS integration TIMEOUT 120)
endforeach()
