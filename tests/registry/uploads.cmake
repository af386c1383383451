# The imageserver's upload handlers (registry/uploads.c) end to end: a private
# cluster (scripts/cluster: MariaDB, chunkmaster, 2x2 spy_servers, this
# build's imageserver) in a temp dir on free ports, driven with curl: every
# upload path, a session continued on a second imageserver, a client cut off
# mid-PATCH, racing PATCHes, shared layers, and a 1 GiB streamed upload with
# the server's peak RSS checked. Needs about 6.5 GiB of disk under /tmp
# (preallocated chunk files) and takes about a minute and a half.
add_test(NAME test_uploads
  COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/test_uploads.sh ${CMAKE_BINARY_DIR})
set_tests_properties(test_uploads PROPERTIES LABELS integration TIMEOUT 300
  SKIP_RETURN_CODE 77)
