# chunkbench: put/get throughput of one spy_server (run by bench/chunkserver).
add_executable(chunkbench chunkbench.c)
target_link_libraries(chunkbench spycommon Threads::Threads)
