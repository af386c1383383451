# The registry's HTTP/1.1 connection layer on h2o's event loop (docs/http.md):
# request-head parsing and chunked decoding (pure, fuzzed), response
# formatting, the per-connection state machine, listeners and loop threads.
add_library(spyhttp STATIC
  http_parse.c
  http_format.c
  http_conn.c
  http_server.c
)
target_link_libraries(spyhttp PUBLIC spycommon PkgConfig::H2O PkgConfig::OPENSSL Threads::Threads)
