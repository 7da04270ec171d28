/* storage_bench - sustained load-report writes per second through the
 * storage API: N backends in one service on a temp-file database, W
 * storage_put_load calls round-robin over them, committed every B writes
 * (the batch maximum) and by time (every --flush-ms), the final flush
 * included in the time. Prints the figure and appends one line to the
 * results file. Not a test: it asserts nothing about time.
 *
 *   bench_storage [--backends N] [--writes W] [--batch B] [--flush-ms T]
 *                 [--dir DIR] [--out FILE] [--note TEXT]
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

#include "storage.h"
#include "util.h"

#ifndef LOOKASIDE_BENCH_RESULTS
#define LOOKASIDE_BENCH_RESULTS "bench/results.txt"
#endif

#define GOAL_PER_SEC 50000

struct bench_opts {
    long backends, writes, batch, flush_ms;
    const char *dir, *out, *note;
};

static void bench_usage(void)
{
    fprintf(stderr,
            "usage: bench_storage [--backends N] [--writes W] [--batch B] [--flush-ms T]\n"
            "                     [--dir DIR] [--out FILE] [--note TEXT]\n"
            "defaults: 1000 backends, 1000000 writes, batch %d, flush every 1000 ms,\n"
            "          database in a new directory under /tmp, --out %s\n",
            STORAGE_BATCH_DEFAULT, LOOKASIDE_BENCH_RESULTS);
}

static int bench_parse(int argc, char **argv, struct bench_opts *o)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0)
            return 1;
        if (i + 1 >= argc) {
            fprintf(stderr, "bench_storage: %s needs a value\n", a);
            return -1;
        }
        const char *v = argv[++i];
        long *num = strcmp(a, "--backends") == 0   ? &o->backends
                    : strcmp(a, "--writes") == 0   ? &o->writes
                    : strcmp(a, "--batch") == 0    ? &o->batch
                    : strcmp(a, "--flush-ms") == 0 ? &o->flush_ms
                                                   : NULL;
        if (num != NULL) {
            char *end;
            errno = 0;
            *num = strtol(v, &end, 10);
            if (errno != 0 || *end != '\0' || *num < 1 || *num > 1000000000L) {
                fprintf(stderr, "bench_storage: bad %s %s\n", a, v);
                return -1;
            }
        } else if (strcmp(a, "--dir") == 0) {
            o->dir = v;
        } else if (strcmp(a, "--out") == 0) {
            o->out = v;
        } else if (strcmp(a, "--note") == 0) {
            o->note = v;
        } else {
            fprintf(stderr, "bench_storage: unknown option %s\n", a);
            return -1;
        }
    }
    return 0;
}

/* "Intel(R) Xeon(R) ..." from /proc/cpuinfo, or "unknown cpu". */
static void bench_cpu_model(char *buf, size_t len)
{
    snprintf(buf, len, "unknown cpu");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (f == NULL)
        return;
    char line[512];
    for (int i = 0; i < 10000 && fgets(line, sizeof line, f) != NULL; i++) {
        if (strncmp(line, "model name", 10) != 0)
            continue;
        const char *p = strchr(line, ':');
        if (p == NULL)
            break;
        p++;
        while (*p == ' ' || *p == '\t')
            p++;
        snprintf(buf, len, "%.*s", (int)strcspn(p, "\n"), p);
        break;
    }
    fclose(f);
}

/* The file system type under dir: tmpfs would flatter the figure. */
static const char *bench_fs_type(const char *dir)
{
    struct statfs sf;
    if (statfs(dir, &sf) != 0)
        return "unknown fs";
    switch ((unsigned long)sf.f_type) {
    case 0xEF53UL: return "ext4";
    case 0x01021994UL: return "tmpfs";
    case 0x58465342UL: return "xfs";
    case 0x9123683EUL: return "btrfs";
    case 0x794C7630UL: return "overlayfs";
    default: return "other fs";
    }
}

static int bench_fail(const char *what, storage *s)
{
    fprintf(stderr, "bench_storage: %s: %s\n", what, storage_errmsg(s));
    return 1;
}

/* Removes the database and its WAL/SHM side files, then the directory. */
static void bench_cleanup(const char *dir, const char *db)
{
    char p[4200];
    unlink(db);
    snprintf(p, sizeof p, "%s-wal", db);
    unlink(p);
    snprintf(p, sizeof p, "%s-shm", db);
    unlink(p);
    rmdir(dir);
}

int main(int argc, char **argv)
{
    struct bench_opts o = {.backends = 1000, .writes = 1000000, .batch = STORAGE_BATCH_DEFAULT,
                           .flush_ms = 1000, .dir = NULL, .out = LOOKASIDE_BENCH_RESULTS,
                           .note = ""};
    int pr = bench_parse(argc, argv, &o);
    if (pr != 0) {
        bench_usage();
        return pr > 0 ? 0 : 2;
    }

    char dir[4096], db[4200];
    snprintf(dir, sizeof dir, "%s/lookaside-bench-XXXXXX", o.dir ? o.dir : "/tmp");
    if (mkdtemp(dir) == NULL) {
        fprintf(stderr, "bench_storage: mkdtemp %s: %s\n", dir, strerror(errno));
        return 1;
    }
    snprintf(db, sizeof db, "%s/bench.db", dir);

    storage *s = NULL;
    if (storage_open(db, &s) != LOOKASIDE_OK) {
        fprintf(stderr, "bench_storage: %s\n", storage_open_error());
        rmdir(dir);
        return 1;
    }
    storage_set_batch_max(s, (size_t)o.batch);

    /* Setup, not timed: the service and its backends. */
    char(*addr)[STORAGE_ADDRESS_MAX + 1] = calloc((size_t)o.backends, sizeof *addr);
    if (addr == NULL) {
        fprintf(stderr, "bench_storage: out of memory\n");
        storage_close(s);
        bench_cleanup(dir, db);
        return 1;
    }
    int rc = 0;
    int64_t wall0 = clock_wall_ms();
    if (storage_put_service(s, "bench.svc", 1) != LOOKASIDE_OK)
        rc = bench_fail("put_service", s);
    for (long i = 0; rc == 0 && i < o.backends; i++) {
        storage_backend b;
        memset(&b, 0, sizeof b);
        snprintf(b.service, sizeof b.service, "bench.svc");
        snprintf(addr[i], sizeof addr[i], "10.%ld.%ld.%ld:8080", (i >> 16) & 255, (i >> 8) & 255,
                 i & 255);
        memcpy(b.address, addr[i], sizeof b.address);
        snprintf(b.zone, sizeof b.zone, "zone-%ld", i % 3);
        b.state = 1;
        b.source = 1;
        b.first_seen_ms = wall0;
        b.policy_weight = 1.0;
        if (storage_put_backend(s, &b) != LOOKASIDE_OK)
            rc = bench_fail("put_backend", s);
    }
    if (rc == 0 && storage_flush(s) != LOOKASIDE_OK)
        rc = bench_fail("flush", s);

    /* Timed: the writes and every commit, the last one included. */
    long timed_flushes = 0;
    int64_t t0 = clock_mono_ns(), next_flush = clock_mono_ms() + o.flush_ms;
    for (long i = 0; rc == 0 && i < o.writes; i++) {
        long k = i % o.backends;
        storage_load l = {.cpu = (double)(i % 100) / 100.0, .mem = 0.5, .app = 0.25,
                          .rps = 100.0 + (double)(i % 37), .eps = (double)(i % 5),
                          .in_flight = (uint32_t)(i % 64), .at_ms = wall0 + i / o.backends};
        if (storage_put_load(s, "bench.svc", addr[k], &l) != LOOKASIDE_OK) {
            rc = bench_fail("put_load", s);
            break;
        }
        /* Checking the clock every 256 writes keeps it off the hot path. */
        if ((i & 255) == 255 && clock_mono_ms() >= next_flush) {
            if (storage_flush(s) != LOOKASIDE_OK)
                rc = bench_fail("flush", s);
            timed_flushes++;
            next_flush = clock_mono_ms() + o.flush_ms;
        }
    }
    if (rc == 0 && storage_flush(s) != LOOKASIDE_OK)
        rc = bench_fail("final flush", s);
    int64_t t1 = clock_mono_ns();
    const char *fs = bench_fs_type(dir);
    storage_close(s);
    free(addr);
    bench_cleanup(dir, db);
    if (rc != 0)
        return rc;

    double secs = (double)(t1 - t0) / 1e9;
    double per_sec = secs > 0 ? (double)o.writes / secs : 0;
    char cpu[256], date[16], host[128];
    bench_cpu_model(cpu, sizeof cpu);
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(date, sizeof date, "%Y-%m-%d", &tm);
    if (gethostname(host, sizeof host) != 0)
        snprintf(host, sizeof host, "?");
    host[sizeof host - 1] = '\0';

    printf("storage.put_load_per_sec %.0f (goal >= %d): %ld writes over %ld backends in %.3f s, "
           "batch %ld, %ld timed flushes\n",
           per_sec, GOAL_PER_SEC, o.writes, o.backends, secs, o.batch, timed_flushes);

    FILE *f = fopen(o.out, "a");
    if (f == NULL) {
        fprintf(stderr, "bench_storage: cannot append to %s: %s\n", o.out, strerror(errno));
        return 1;
    }
    fprintf(f,
            "%s storage.put_load_per_sec %.0f (goal >= %d) %ld cpus, %s, sqlite %s, %ld "
            "backends, %ld writes, batch %ld, WAL synchronous=NORMAL, db on %s in %s%s%s\n",
            date, per_sec, GOAL_PER_SEC, sysconf(_SC_NPROCESSORS_ONLN), cpu,
            storage_sqlite_version(), o.backends, o.writes, o.batch, fs, o.dir ? o.dir : "/tmp",
            o.note[0] ? ", " : "", o.note);
    if (fclose(f) != 0) {
        fprintf(stderr, "bench_storage: writing %s: %s\n", o.out, strerror(errno));
        return 1;
    }
    printf("appended to %s\n", o.out);
    return 0;
}
