# fuzz_frame: spy_frame_decode, every payload decoder, and spy_client's
# response parsing over a socketpair (see fuzz_frame.c). The common sources
# are compiled into the target so the fuzzer sees their coverage.
# Run: build-fuzz/fuzz/fuzz_frame -max_total_time=60 -max_len=4096 \
#        fuzz/corpus/frame   (a scratch copy of the corpus keeps the tree clean)
spy_fuzz_target(fuzz_frame fuzz_frame.c
  ${CMAKE_SOURCE_DIR}/common/proto.c
  ${CMAKE_SOURCE_DIR}/common/crc32c.c
  ${CMAKE_SOURCE_DIR}/common/log.c
  ${CMAKE_SOURCE_DIR}/common/clock.c
  ${CMAKE_SOURCE_DIR}/common/status.c)
