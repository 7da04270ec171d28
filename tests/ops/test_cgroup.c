/* client/cgroup.c against fake cgroup trees in a temporary directory:
 * v2 (nested groups, the container's own root, no limit), v1 (combined
 * controller directories, the host path missing inside the container,
 * "unlimited"), hybrid hosts, and hostile file contents. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "cgroup.h"

static char root[256];

/* Writes ROOT/rel (creating directories) with content. */
static void put(const char *rel, const char *content)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", root, rel);
    for (char *p = path + strlen(root) + 1; *p; p++) {
        if (*p == '/') {
            *p = '\0';
            mkdir(path, 0755);
            *p = '/';
        }
    }
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(content, f);
    fclose(f);
}

/* Reads the limits under root and checks them. */
static void expect(int version, double cpu, double mem)
{
    cgroup_limits l;
    cgroup_read_limits(root, &l);
    assert_int_equal(l.version, version);
    assert_true(l.cpu_cores == cpu);
    assert_true(l.mem_bytes == mem);
}

static int setup(void **st)
{
    (void)st;
    snprintf(root, sizeof root, "/tmp/la_cgroup_XXXXXX");
    return mkdtemp(root) ? 0 : -1;
}

static int teardown(void **st)
{
    (void)st;
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    return system(cmd) == 0 ? 0 : -1;
}

static void test_v2_nested(void **st)
{
    (void)st;
    put("proc/self/cgroup", "0::/kubepods/pod1/ctr\n");
    put("sys/fs/cgroup/kubepods/pod1/ctr/cpu.max", "50000 100000\n");
    put("sys/fs/cgroup/kubepods/pod1/ctr/memory.max", "max\n");
    /* The pod's limit above the container's: the smaller wins. */
    put("sys/fs/cgroup/kubepods/pod1/memory.max", "268435456\n");
    put("sys/fs/cgroup/kubepods/pod1/cpu.max", "max 100000\n");
    put("sys/fs/cgroup/kubepods/cpu.max", "400000 100000\n");
    expect(2, 0.5, 268435456.0);
    assert_true(cgroup_effective_cores(root, 4) == 0.5);
    /* Fewer CPUs in the affinity set than the quota: the CPUs bound it. */
    put("sys/fs/cgroup/kubepods/pod1/ctr/cpu.max", "800000 100000\n");
    assert_true(cgroup_effective_cores(root, 2) == 2);
    assert_true(cgroup_effective_memory(root, 1e12) == 268435456.0);
    assert_true(cgroup_effective_memory(root, 1e8) == 1e8);
}

static void test_v2_own_root(void **st)
{
    (void)st;
    /* A cgroup namespace: the container's group is the root. */
    put("proc/self/cgroup", "0::/\n");
    put("sys/fs/cgroup/cpu.max", "150000 100000\n");
    put("sys/fs/cgroup/memory.max", "1073741824\n");
    expect(2, 1.5, 1073741824.0);
}

static void test_v2_unlimited(void **st)
{
    (void)st;
    put("proc/self/cgroup", "0::/user.slice\n");
    put("sys/fs/cgroup/user.slice/cpu.max", "max 100000\n");
    put("sys/fs/cgroup/user.slice/memory.max", "max\n");
    expect(2, 0, 0);
    assert_true(cgroup_effective_cores(root, 3) == 3);
    assert_true(cgroup_effective_memory(root, 5e9) == 5e9);
}

static void test_v1(void **st)
{
    (void)st;
    put("proc/self/cgroup",
        "12:pids:/docker/abc\n4:memory:/docker/abc\n3:cpu,cpuacct:/docker/abc\n"
        "1:name=systemd:/docker/abc\n");
    put("sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_quota_us", "250000\n");
    put("sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_period_us", "100000\n");
    put("sys/fs/cgroup/memory/docker/abc/memory.limit_in_bytes", "536870912\n");
    put("sys/fs/cgroup/memory/memory.limit_in_bytes", "9223372036854771712\n");
    expect(1, 2.5, 536870912.0);
}

static void test_v1_host_path_missing(void **st)
{
    (void)st;
    /* No cgroup namespace: /proc shows the host's path, the container
     * mounts only its own group at the hierarchy's root. Hybrid host: the
     * "0::" line is there too, but the limits live in v1. */
    put("proc/self/cgroup", "4:memory:/kubepods/burstable/pod9/c1\n3:cpu:/kubepods/burstable/pod9/c1\n"
                            "0::/\n");
    put("sys/fs/cgroup/cpu/cpu.cfs_quota_us", "50000\n");
    put("sys/fs/cgroup/cpu/cpu.cfs_period_us", "100000\n");
    put("sys/fs/cgroup/memory/memory.limit_in_bytes", "134217728\n");
    expect(1, 0.5, 134217728.0);
}

static void test_v1_unlimited(void **st)
{
    (void)st;
    put("proc/self/cgroup", "4:memory:/\n1:cpu:/\n");
    put("sys/fs/cgroup/cpu/cpu.cfs_quota_us", "-1\n");
    put("sys/fs/cgroup/cpu/cpu.cfs_period_us", "100000\n");
    put("sys/fs/cgroup/memory/memory.limit_in_bytes", "9223372036854771712\n");
    expect(1, 0, 0);
}

static void test_hostile(void **st)
{
    (void)st;
    cgroup_limits l;
    /* No /proc/self/cgroup at all: no cgroup, no limits. */
    cgroup_read_limits(root, &l);
    assert_int_equal(l.version, 0);
    assert_true(cgroup_effective_cores(root, 0) == 0.01);
    assert_true(cgroup_effective_memory(root, 0) == 0);
    /* Garbage values are "no limit", never a crash or a negative. */
    const char *bad[] = {"abc\n", "-5 100000\n", "100 0\n", "100 x\n", "1e400 1\n", "\n", "nan 1\n"};
    put("proc/self/cgroup", "0::/g\n");
    put("sys/fs/cgroup/g/memory.max", "-1\n");
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        put("sys/fs/cgroup/g/cpu.max", bad[i]);
        cgroup_read_limits(root, &l);
        assert_true(l.cpu_cores == 0);
        assert_true(l.mem_bytes == 0);
    }
    /* A path escaping the hierarchy is refused. */
    put("proc/self/cgroup", "0::/../../etc\n");
    put("etc/cpu.max", "100 100000\n");
    cgroup_read_limits(root, &l);
    assert_true(l.cpu_cores == 0);
    /* Malformed lines are skipped. */
    put("proc/self/cgroup", "garbage\n:::\n7:cpu\n0::relative\n");
    cgroup_read_limits(root, &l);
    assert_int_equal(l.version, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_v2_nested, setup, teardown),
        cmocka_unit_test_setup_teardown(test_v2_own_root, setup, teardown),
        cmocka_unit_test_setup_teardown(test_v2_unlimited, setup, teardown),
        cmocka_unit_test_setup_teardown(test_v1, setup, teardown),
        cmocka_unit_test_setup_teardown(test_v1_host_path_missing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_v1_unlimited, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hostile, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
