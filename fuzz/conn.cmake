# fuzz_conn: a whole spy_server connection (spy_server_serve_connection on a
# socketpair) fed arbitrary client bytes against a real store; see
# fuzz_conn.c. The server, pool and protocol sources are compiled into the
# target so the fuzzer sees their coverage; the store is linked as is.
# Run: build-fuzz/fuzz/fuzz_conn -max_total_time=60 -timeout=20 <scratch copy of fuzz/corpus/conn>
spy_fuzz_target(fuzz_conn fuzz_conn.c
  ${CMAKE_SOURCE_DIR}/chunkserver/server.c
  ${CMAKE_SOURCE_DIR}/chunkserver/mempool.c
  ${CMAKE_SOURCE_DIR}/common/proto.c)
target_link_libraries(fuzz_conn spystore spycommon PkgConfig::JANSSON Threads::Threads)
