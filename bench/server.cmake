# bench_server: fan-out, reports/s and restart figures through the real binary.
add_executable(bench_server ${CMAKE_CURRENT_LIST_DIR}/server_bench.c)
target_link_libraries(bench_server PRIVATE lookaside_bench_util lookaside_storage lookaside_proto lookaside_common
  PkgConfig::GRPC)
target_compile_definitions(bench_server PRIVATE
  LOOKASIDE_SERVER_BIN="$<TARGET_FILE:lookaside-server>"
  LOOKASIDE_BENCH_RESULTS="${CMAKE_SOURCE_DIR}/bench/results.txt")
add_dependencies(bench_server lookaside-server)
