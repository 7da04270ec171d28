/* cgroup.h - the CPU and memory limits of this process's control group, so
 * the reporter's utilisation is a fraction of what the container may use
 * (a pod limited to 0.5 CPU that burns 0.5 CPU is at 100 %, not at
 * 0.5 / node cores).
 *
 * Reads /proc/self/cgroup to find the process's group, then the limits on
 * the way from that group up to the hierarchy's root (the effective limit
 * is the smallest; a container usually sees its own group as the root):
 *   cgroup v2 (unified, "0::PATH"): cpu.max ("QUOTA PERIOD" or "max PERIOD"),
 *     memory.max (bytes or "max"), under ROOT/sys/fs/cgroup;
 *   cgroup v1: cpu.cfs_quota_us (-1 = none) / cpu.cfs_period_us under the
 *     hierarchy carrying the "cpu" controller, memory.limit_in_bytes (a
 *     value near 2^63 = none) under "memory", each at
 *     ROOT/sys/fs/cgroup/<controllers as listed in /proc/self/cgroup>.
 * When the group's directory is missing (v1 without a cgroup namespace
 * shows the host's path while the container mounts only its own group),
 * the hierarchy's root directory is read instead.
 *
 * `root` prefixes every path ("" for the real system), so tests point it at
 * a fake tree in a temporary directory. Unreadable or absent files mean "no
 * limit"; nothing here fails. Thread-safe (no state). */
#ifndef LA_CGROUP_H
#define LA_CGROUP_H

typedef struct cgroup_limits {
    double cpu_cores;   /* quota / period; 0 = no CPU limit found */
    double mem_bytes;   /* 0 = no memory limit found */
    int version;        /* 2, 1, or 0 when no cgroup was found */
} cgroup_limits;

/* Fills *out with the effective limits seen from root ("" = "/"). */
void cgroup_read_limits(const char *root, cgroup_limits *out);

/* The cores CPU utilisation should be divided by: the cgroup CPU limit when
 * it is below `affinity_cores` (the CPUs the process may run on), else
 * affinity_cores. Never below 0.01. */
double cgroup_effective_cores(const char *root, double affinity_cores);

/* The memory a process may use: the cgroup limit when set and below
 * physical memory, else physical_bytes; 0 when neither is known. */
double cgroup_effective_memory(const char *root, double physical_bytes);

#endif
