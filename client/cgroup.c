#include "cgroup.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define CG_PATH 1024
/* cgroup v1 writes "no limit" as the largest page-aligned int64
 * (9223372036854771712); anything this large is no limit. */
#define CG_V1_UNLIMITED 4.0e18

/* The first line of a small file, without the newline; false if unreadable. */
static bool read_line(const char *path, char *buf, size_t n)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return false;
    bool ok = fgets(buf, (int)n, f) != NULL;
    fclose(f);
    if (ok)
        buf[strcspn(buf, "\n")] = '\0';
    return ok;
}

/* A non-negative number that fills the whole text; false otherwise. */
static bool parse_num(const char *s, double *out)
{
    char *end;
    double v = strtod(s, &end);
    if (end == s || (*end != '\0' && *end != ' ') || !(v >= 0) || v > 1e300)
        return false;
    *out = v;
    return true;
}

static bool is_dir(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static void keep_min(double *cur, double v)
{
    if (v > 0 && (*cur == 0 || v < *cur))
        *cur = v;
}

/* dir/file into path; false when it does not fit (never read a truncated
 * path: it names another file). */
static bool join(char *path, size_t len, const char *dir, const char *file)
{
    int n = snprintf(path, len, "%s/%s", dir, file);
    return n >= 0 && (size_t)n < len;
}

/* v2 cpu.max: "QUOTA PERIOD" | "max PERIOD". */
static double v2_cpu(const char *dir)
{
    char path[CG_PATH], line[128];
    if (!join(path, sizeof path, dir, "cpu.max") || !read_line(path, line, sizeof line) || strncmp(line, "max", 3) == 0)
        return 0;
    char *sp = strchr(line, ' ');
    double quota, period = 100000;
    if (sp != NULL) {
        *sp = '\0';
        if (!parse_num(sp + 1, &period))
            return 0;
    }
    if (!parse_num(line, &quota) || quota <= 0 || period <= 0)
        return 0;
    return quota / period;
}

static double v2_mem(const char *dir)
{
    char path[CG_PATH], line[128];
    double v;
    if (!join(path, sizeof path, dir, "memory.max") || !read_line(path, line, sizeof line) || !parse_num(line, &v))
        return 0;       /* includes "max" */
    return v;
}

static double v1_cpu(const char *dir)
{
    char path[CG_PATH], line[128];
    double quota, period;
    if (!join(path, sizeof path, dir, "cpu.cfs_quota_us") || !read_line(path, line, sizeof line) || !parse_num(line, &quota) || quota <= 0)
        return 0;       /* -1 = no quota (parse_num refuses negatives) */
    if (!join(path, sizeof path, dir, "cpu.cfs_period_us") || !read_line(path, line, sizeof line) || !parse_num(line, &period) || period <= 0)
        return 0;
    return quota / period;
}

static double v1_mem(const char *dir)
{
    char path[CG_PATH], line[128];
    double v;
    if (!join(path, sizeof path, dir, "memory.limit_in_bytes") || !read_line(path, line, sizeof line) || !parse_num(line, &v) || v >= CG_V1_UNLIMITED)
        return 0;
    return v;
}

/* Applies fn to the group's directory and each ancestor up to mount,
 * keeping the smallest limit. The group path comes from a file a container
 * runtime controls, so ".." components are refused. */
static double walk(const char *mount, const char *group, double (*fn)(const char *))
{
    char dir[CG_PATH];
    if (strstr(group, "..") != NULL || !is_dir(mount))
        return 0;
    int n = snprintf(dir, sizeof dir, "%s%s", mount, strcmp(group, "/") == 0 ? "" : group);
    if (n < 0 || (size_t)n >= sizeof dir || !is_dir(dir))
        snprintf(dir, sizeof dir, "%s", mount);
    size_t mlen = strlen(mount);
    double best = 0;
    for (;;) {
        keep_min(&best, fn(dir));
        if (strlen(dir) <= mlen)
            break;
        char *slash = strrchr(dir, '/');
        if (slash == NULL || (size_t)(slash - dir) < mlen)
            break;
        *slash = '\0';
    }
    return best;
}

void cgroup_read_limits(const char *root, cgroup_limits *out)
{
    memset(out, 0, sizeof *out);
    if (root == NULL)
        root = "";
    char path[CG_PATH], line[CG_PATH];
    snprintf(path, sizeof path, "%s/proc/self/cgroup", root);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return;
    char v2_group[CG_PATH] = "";
    bool have_v2 = false, have_v1 = false;
    double v1c = 0, v1m = 0;
    while (fgets(line, sizeof line, f) != NULL) {
        line[strcspn(line, "\n")] = '\0';
        /* "ID:CONTROLLERS:PATH" */
        char *c1 = strchr(line, ':');
        char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
        if (c2 == NULL || c2[1] != '/')
            continue;
        *c1 = *c2 = '\0';
        const char *ctrls = c1 + 1, *group = c2 + 1;
        if (strcmp(line, "0") == 0 && ctrls[0] == '\0') {
            snprintf(v2_group, sizeof v2_group, "%s", group);
            have_v2 = true;
            continue;
        }
        /* v1: is "cpu" or "memory" in the comma-separated list? */
        bool cpu = false, mem = false;
        char list[256];
        snprintf(list, sizeof list, "%s", ctrls);
        for (char *save = NULL, *t = strtok_r(list, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
            cpu |= strcmp(t, "cpu") == 0;
            mem |= strcmp(t, "memory") == 0;
        }
        if (!cpu && !mem)
            continue;
        char mount[CG_PATH];
        snprintf(mount, sizeof mount, "%s/sys/fs/cgroup/%s", root, ctrls);
        if (cpu) {
            keep_min(&v1c, walk(mount, group, v1_cpu));
            have_v1 = true;
        }
        if (mem) {
            keep_min(&v1m, walk(mount, group, v1_mem));
            have_v1 = true;
        }
    }
    fclose(f);
    if (have_v1) {
        out->version = 1;
        out->cpu_cores = v1c;
        out->mem_bytes = v1m;
    } else if (have_v2) {
        char mount[CG_PATH];
        snprintf(mount, sizeof mount, "%s/sys/fs/cgroup", root);
        out->version = 2;
        out->cpu_cores = walk(mount, v2_group, v2_cpu);
        out->mem_bytes = walk(mount, v2_group, v2_mem);
    }
}

double cgroup_effective_cores(const char *root, double affinity_cores)
{
    cgroup_limits l;
    cgroup_read_limits(root, &l);
    double c = affinity_cores;
    if (l.cpu_cores > 0 && (c <= 0 || l.cpu_cores < c))
        c = l.cpu_cores;
    return c < 0.01 ? 0.01 : c;
}

double cgroup_effective_memory(const char *root, double physical_bytes)
{
    cgroup_limits l;
    cgroup_read_limits(root, &l);
    if (l.mem_bytes > 0 && (physical_bytes <= 0 || l.mem_bytes < physical_bytes))
        return l.mem_bytes;
    return physical_bytes > 0 ? physical_bytes : 0;
}
