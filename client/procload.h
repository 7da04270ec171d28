/* procload.h - this process's CPU and memory use, for the reporter.
 *
 * CPU: user + system time from getrusage(RUSAGE_SELF) over wall time since
 * the previous sample, divided by the cores the process may use (its
 * sched_getaffinity set, or the cgroup CPU quota when lower; see cgroup.h)
 * unless given. Memory: resident set size over the cgroup (v2 or v1) memory
 * limit when set, else over physical memory. Not thread-safe (one sampler). */
#ifndef LA_PROCLOAD_H
#define LA_PROCLOAD_H

#include <stdint.h>

typedef struct procload {
    int64_t last_wall_ns;
    int64_t last_cpu_ns;
    double cores;       /* fractional under a cgroup CPU quota */
} procload;

/* cores 0: count the CPUs in the affinity set. Takes the first sample. */
void procload_init(procload *p, uint32_t cores);
/* CPU utilisation since the previous sample (or init), 0 when no time
 * passed; then starts a new interval. */
double procload_cpu(procload *p);
/* Memory utilisation now, 0..1; 0 when unknown. */
double procload_mem(void);
/* CPUs this process may run on (>= 1). */
uint32_t procload_cores(void);

#endif
