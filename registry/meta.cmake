# The registry's metadata in MySQL/MariaDB (library spymeta): schema and
# migrations, the worker pool with one connection per thread, the operations,
# and the cache of immutable facts. See docs/metadata.md.
add_library(spymeta STATIC
  ${CMAKE_CURRENT_LIST_DIR}/meta_cache.c
  ${CMAKE_CURRENT_LIST_DIR}/meta_db.c
  ${CMAKE_CURRENT_LIST_DIR}/meta_schema.c
  ${CMAKE_CURRENT_LIST_DIR}/meta_pool.c
  ${CMAKE_CURRENT_LIST_DIR}/meta_op.c
  ${CMAKE_CURRENT_LIST_DIR}/meta_blobs.c
  ${CMAKE_CURRENT_LIST_DIR}/meta_manifests.c
  ${CMAKE_CURRENT_LIST_DIR}/meta_uploads.c
)
target_link_libraries(spymeta PUBLIC spycommon spyoci PkgConfig::MARIADB PkgConfig::JANSSON
  Threads::Threads)
