/* bench_util.h - what the bench programs share: a process's RSS and CPU
 * from /proc, and the results-file line every benchmark appends.
 *
 * Single-threaded use; no allocation. Errors: rss and cpu return -1 when the
 * process is gone or /proc cannot be read; bench_append_result ignores a
 * results file it cannot open (the figure is still printed by the caller). */
#ifndef LA_BENCH_UTIL_H
#define LA_BENCH_UTIL_H

#include <sys/types.h>

/* Resident set size of pid in kB (VmRSS), -1 when unknown. */
long bench_rss_kb(pid_t pid);

/* utime + stime of pid in ms (clock-tick resolution), -1 when unknown. */
double bench_cpu_ms(pid_t pid);

/* Appends "YYYY-MM-DD NAME VALUE UNIT (goal GOAL) NOTES" to path, VALUE
 * with decimals digits after the point (UTC date). */
void bench_append_result(const char *path, const char *name, double value, int decimals,
                         const char *unit, const char *goal, const char *notes);

#endif
