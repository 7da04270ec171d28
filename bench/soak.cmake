# bench_soak: lookaside-server under churn for a long time (RSS and fd growth).
add_executable(bench_soak ${CMAKE_CURRENT_LIST_DIR}/soak.c)
target_link_libraries(bench_soak PRIVATE lookaside_bench_util lookaside_proto PkgConfig::GRPC)
target_compile_definitions(bench_soak PRIVATE
  LOOKASIDE_SERVER_BIN="$<TARGET_FILE:lookaside-server>"
  LOOKASIDE_BENCH_RESULTS="${CMAKE_SOURCE_DIR}/bench/results.txt")
add_dependencies(bench_soak lookaside-server)
