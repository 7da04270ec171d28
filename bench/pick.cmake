# bench_pick: ns per lookaside_pick (1 and 2 threads, 10 backends).
# Run from a Release build without sanitizers:
#   cmake -S . -B build/release -DCMAKE_BUILD_TYPE=Release && cmake --build build/release --target bench_pick
#   build/release/bench/bench_pick
add_executable(bench_pick ${CMAKE_CURRENT_LIST_DIR}/pick_bench.c)
target_link_libraries(bench_pick PRIVATE lookaside_bench_util lookaside_static)
target_compile_definitions(bench_pick PRIVATE
    LOOKASIDE_BENCH_RESULTS="${CMAKE_SOURCE_DIR}/bench/results.txt")
