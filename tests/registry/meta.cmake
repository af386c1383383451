# The registry's metadata layer (registry/meta_*.c, docs/metadata.md).

# The cache alone: budget, LRU, TTL with an injected clock, epochs.
spy_unit_test(test_meta_cache ${CMAKE_CURRENT_LIST_DIR}/test_meta_cache.c)
target_link_libraries(test_meta_cache spymeta)

# Integration tests (label "integration"): each program starts a private
# MariaDB with scripts/mariadb in a temp dir on a free port, through the
# chunkmaster tests' harness (tests/chunkmaster/harness.[ch]).
add_library(test_meta_util STATIC
  ${CMAKE_CURRENT_LIST_DIR}/test_meta_util.c
  ${CMAKE_CURRENT_LIST_DIR}/../chunkmaster/harness.c)
target_include_directories(test_meta_util PUBLIC ${CMAKE_CURRENT_LIST_DIR}/../chunkmaster)
target_link_libraries(test_meta_util PUBLIC spymeta PkgConfig::CMOCKA PkgConfig::JANSSON
  PkgConfig::OPENSSL PkgConfig::MARIADB)

function(spy_meta_integration_test name)
  add_executable(${name} ${CMAKE_CURRENT_LIST_DIR}/${name}.c)
  target_link_libraries(${name} test_meta_util)
  add_test(NAME ${name} COMMAND ${name})
  set_tests_properties(${name} PROPERTIES LABELS integration TIMEOUT 120
    ENVIRONMENT "SPY_SOURCE_DIR=${CMAKE_SOURCE_DIR}")
endfunction()

# Every operation, its happy path and edge cases.
spy_meta_integration_test(test_meta_ops)
# Migrations (twice, two processes at once), races (same blob, shared layers),
# two pools sharing uploads, queue full, the database going away and back.
spy_meta_integration_test(test_meta_pool)
