# The HTTP/1.1 connection layer (registry/http_*.c, docs/http.md).

# The test routes (echo with SHA-256, slow consumer, hold, download, ...),
# shared by the in-process tests and the test server program.
add_library(test_http_handlers STATIC test_http_handlers.c)
target_link_libraries(test_http_handlers PUBLIC spyhttp PkgConfig::OPENSSL)

# The layer with the test routes as a program: curl tests and benchmarks.
add_executable(test_http_testserver test_http_testserver.c)
target_link_libraries(test_http_testserver test_http_handlers)

# Pure functions: head parsing, chunked decoding, response formatting.
spy_unit_test(test_http_parse test_http_parse.c)
target_link_libraries(test_http_parse spyhttp)

# The layer in-process over raw sockets: keep-alive, pipelining, 100-continue,
# HEAD, errors, timeouts, aborts, back-pressure, stop.
spy_unit_test(test_http_server test_http_server.c)
target_link_libraries(test_http_server test_http_handlers)

# curl against test_http_testserver: uploads of 0 B to 300 MiB (Content-Length
# and chunked), digests, flat server memory, keep-alive, downloads.
spy_unit_test(test_http_curl test_http_curl.c)
target_link_libraries(test_http_curl spycommon)
target_compile_definitions(test_http_curl PRIVATE
  TEST_HTTP_TESTSERVER="$<TARGET_FILE:test_http_testserver>")
add_dependencies(test_http_curl test_http_testserver)
set_tests_properties(test_http_curl PROPERTIES LABELS integration)

# TLS (cfg.tls): curl --cacert against the layer in process with a
# self-signed certificate: errors of spy_http_tls_create, ALPN http/1.1,
# keep-alive, 100 MiB and chunked uploads, downloads written in parts, a
# plain-HTTP client on the TLS port.
spy_unit_test(test_http_tls test_http_tls.c)
target_link_libraries(test_http_tls test_http_handlers)
set_tests_properties(test_http_tls PROPERTIES LABELS integration TIMEOUT 300)
