# fuzz_http: the HTTP layer's request-head parser, chunked decoder and response
# formatter (see fuzz_http.c). The sources are compiled into the target so the
# fuzzer sees their coverage; picohttpparser comes from libh2o-evloop.
# Run: build-fuzz/fuzz/fuzz_http -max_total_time=60 -max_len=8192 \
#        fuzz/corpus/http   (a scratch copy of the corpus keeps the tree clean)
spy_fuzz_target(fuzz_http fuzz_http.c
  ${CMAKE_SOURCE_DIR}/registry/http_parse.c
  ${CMAKE_SOURCE_DIR}/registry/http_format.c)
target_link_libraries(fuzz_http PkgConfig::H2O)
