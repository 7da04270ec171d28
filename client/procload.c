#include "procload.h"

#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "cgroup.h"
#include "util.h"

static int64_t cpu_ns(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0)
        return 0;
    return ((int64_t)ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000000 +
           ((int64_t)ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000;
}

uint32_t procload_cores(void)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof set, &set) == 0) {
        int n = CPU_COUNT(&set);
        if (n > 0)
            return (uint32_t)n;
    }
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (uint32_t)n : 1;
}

void procload_init(procload *p, uint32_t cores)
{
    p->cores = cores ? cores : cgroup_effective_cores("", procload_cores());
    p->last_wall_ns = clock_mono_ns();
    p->last_cpu_ns = cpu_ns();
}

double procload_cpu(procload *p)
{
    int64_t wall = clock_mono_ns(), cpu = cpu_ns();
    int64_t dw = wall - p->last_wall_ns, dc = cpu - p->last_cpu_ns;
    p->last_wall_ns = wall;
    p->last_cpu_ns = cpu;
    if (dw <= 0 || dc < 0)
        return 0;
    return (double)dc / ((double)dw * p->cores);
}

double procload_mem(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    if (f == NULL)
        return 0;
    unsigned long size = 0, resident = 0;
    int got = fscanf(f, "%lu %lu", &size, &resident);
    fclose(f);
    if (got != 2)
        return 0;
    long page = sysconf(_SC_PAGESIZE);
    double rss = (double)resident * (double)(page > 0 ? page : 4096);
    long pages = sysconf(_SC_PHYS_PAGES);
    double phys = pages > 0 ? (double)pages * (double)(page > 0 ? page : 4096) : 0;
    double limit = cgroup_effective_memory("", phys);
    if (limit <= 0)
        return 0;
    double u = rss / limit;
    return u > 1 ? 1 : u;
}
