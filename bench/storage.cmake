# bench_storage: sustained load-report writes per second through storage.h.
# Not a test; run it from a Release build (see bench/storage_bench.c).
add_executable(bench_storage ${CMAKE_CURRENT_LIST_DIR}/storage_bench.c)
target_link_libraries(bench_storage PRIVATE lookaside_storage lookaside_common)
target_compile_definitions(bench_storage PRIVATE
                           LOOKASIDE_BENCH_RESULTS="${CMAKE_SOURCE_DIR}/bench/results.txt")
