# The imageserver (docs/registry.md): the router and the handlers (library
# spyregistry, so tests can link them) and the executable with its flags.
add_library(spyregistry STATIC
  ${CMAKE_CURRENT_LIST_DIR}/registry.c
  ${CMAKE_CURRENT_LIST_DIR}/blobs.c
  ${CMAKE_CURRENT_LIST_DIR}/manifests.c
  ${CMAKE_CURRENT_LIST_DIR}/tags.c
  ${CMAKE_CURRENT_LIST_DIR}/referrers.c
  ${CMAKE_CURRENT_LIST_DIR}/uploads.c
)
target_link_libraries(spyregistry PUBLIC spyhttp spyoci spymeta spyblob)

add_executable(imageserver ${CMAKE_CURRENT_LIST_DIR}/main.c)
target_link_libraries(imageserver spyregistry)
