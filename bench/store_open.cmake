# store_open: spy_store_open time on a filled data directory, with and without
# its checkpoints (numbers in docs/chunkserver.md).
add_executable(store_open ${CMAKE_CURRENT_LIST_DIR}/store_open.c)
target_link_libraries(store_open spystore spycommon)
