# bench_replica: etcd mode (README "Replicas") through real etcd and replicas:
# registration -> remote watcher, etcd writes per report, push with 3 replicas.
add_executable(bench_replica ${CMAKE_CURRENT_LIST_DIR}/replica_bench.c)
target_link_libraries(bench_replica PRIVATE lookaside_bench_util lookaside_proto lookaside_etcd_proto PkgConfig::GRPC)
target_compile_definitions(bench_replica PRIVATE
  LOOKASIDE_SERVER_BIN="$<TARGET_FILE:lookaside-server>"
  LOOKASIDE_BENCH_RESULTS="${CMAKE_SOURCE_DIR}/bench/results.txt")
add_dependencies(bench_replica lookaside-server)
