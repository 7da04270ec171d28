#include "metrics.h"

#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

metrics la_metrics;

const double metrics_buckets[METRICS_NBUCKETS] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                                  0.05,   0.1,   0.25,   0.5,   1,    2.5};

#define LOAD(x) ((unsigned long long)atomic_load_explicit(&(x), memory_order_relaxed))

void metrics_observe(metrics_hist *h, double seconds)
{
    if (!(seconds > 0))
        seconds = 0;
    size_t i = 0;
    while (i < METRICS_NBUCKETS && seconds > metrics_buckets[i])
        i++;
    atomic_fetch_add_explicit(&h->bucket[i], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->count, 1, memory_order_relaxed);
    double us = seconds * 1e6;
    atomic_fetch_add_explicit(&h->sum_us, us < 1e15 ? (uint_fast64_t)us : 0,
                              memory_order_relaxed);
}

void metrics_refused(const char *path, lookaside_status st)
{
    metrics_reject r;
    switch (st) {
    case LOOKASIDE_EINVAL: r = METRICS_REJECT_INVALID; break;
    case LOOKASIDE_ETOOBIG: r = METRICS_REJECT_OVERSIZE; break;
    case LOOKASIDE_EUNAUTH: r = METRICS_REJECT_UNAUTHENTICATED; break;
    case LOOKASIDE_EPERM: r = METRICS_REJECT_PERMISSION; break;
    case LOOKASIDE_ELIMIT: r = METRICS_REJECT_LIMIT; break;
    default: r = METRICS_REJECT_OTHER; break;
    }
    METRIC_INC(rpc_refused[r]);
    if (path && strcmp(path, "/lookaside.v1.LoadReporter/Report") == 0)
        METRIC_INC(reports_rejected[r]);
}

void metrics_flushed(lookaside_status st, int64_t ns)
{
    if (st != LOOKASIDE_OK) {
        METRIC_INC(storage_errors);
        return;
    }
    METRIC_INC(storage_flushes);
    metrics_observe(&la_metrics.storage_flush_latency, (double)ns / 1e9);
}

void metrics_push_done(int64_t *published_unix_ms)
{
    if (*published_unix_ms <= 0)
        return;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t now = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    metrics_observe(&la_metrics.push_latency, (double)(now - *published_unix_ms) / 1000.0);
    METRIC_INC(pushes);
    *published_unix_ms = 0;
}

const char *metrics_reject_name(metrics_reject r)
{
    static const char *const names[METRICS_REJECT_N] = {
        "invalid", "oversize", "unauthenticated", "permission", "limit", "other"};
    return r < METRICS_REJECT_N ? names[r] : "other";
}

static void header(FILE *f, const char *name, const char *type, const char *help)
{
    fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void counter(FILE *f, const char *name, const char *help, unsigned long long v)
{
    header(f, name, "counter", help);
    fprintf(f, "%s %llu\n", name, v);
}

void metrics_write_hist(FILE *f, const char *name, const char *help, const metrics_hist *h)
{
    header(f, name, "histogram", help);
    /* Read the buckets first and derive the count from them, so a scrape
     * racing an observation still sees count == the +Inf bucket. */
    unsigned long long cum = 0;
    for (size_t i = 0; i <= METRICS_NBUCKETS; i++) {
        cum += LOAD(h->bucket[i]);
        if (i < METRICS_NBUCKETS)
            fprintf(f, "%s_bucket{le=\"%g\"} %llu\n", name, metrics_buckets[i], cum);
        else
            fprintf(f, "%s_bucket{le=\"+Inf\"} %llu\n", name, cum);
    }
    fprintf(f, "%s_sum %.6f\n%s_count %llu\n", name, (double)LOAD(h->sum_us) / 1e6, name, cum);
}

void metrics_write_counters(FILE *f)
{
    metrics *m = &la_metrics;
    counter(f, "lookaside_reports_received_total", "Load reports accepted.",
            LOAD(m->reports_received));
    header(f, "lookaside_reports_rejected_total", "counter",
           "Report streams or messages refused, by reason.");
    for (int r = 0; r < METRICS_REJECT_N; r++)
        fprintf(f, "lookaside_reports_rejected_total{reason=\"%s\"} %llu\n",
                metrics_reject_name((metrics_reject)r), LOAD(m->reports_rejected[r]));
    header(f, "lookaside_rpc_refused_total", "counter",
           "Calls of any method refused, by reason.");
    for (int r = 0; r < METRICS_REJECT_N; r++)
        fprintf(f, "lookaside_rpc_refused_total{reason=\"%s\"} %llu\n",
                metrics_reject_name((metrics_reject)r), LOAD(m->rpc_refused[r]));
    counter(f, "lookaside_registrations_total", "Backends registered by a Report stream.",
            LOAD(m->registrations));
    counter(f, "lookaside_evictions_total",
            "Backends evicted because their live stream stopped reporting.", LOAD(m->evictions));
    counter(f, "lookaside_drains_total", "Drains (by the backend or an operator).",
            LOAD(m->drains));
    counter(f, "lookaside_list_publishes_total", "Server list versions published.",
            LOAD(m->publishes));
    counter(f, "lookaside_pushes_total", "Server lists sent to Watch streams.", LOAD(m->pushes));
    metrics_write_hist(f, "lookaside_push_latency_seconds",
                       "From a list's publication to its send completing, per Watch stream.",
                       &m->push_latency);
    header(f, "lookaside_grpclb_streams", "gauge", "Open grpc.lb.v1 BalanceLoad streams.");
    fprintf(f, "lookaside_grpclb_streams %lld\n",
            (long long)atomic_load_explicit(&m->grpclb_streams, memory_order_relaxed));
    counter(f, "lookaside_grpclb_lists_total", "Server lists sent to grpclb streams.",
            LOAD(m->grpclb_lists));
    counter(f, "lookaside_storage_flushes_total", "Write-behind batches committed to SQLite.",
            LOAD(m->storage_flushes));
    counter(f, "lookaside_storage_errors_total", "Storage flushes that failed.",
            LOAD(m->storage_errors));
    metrics_write_hist(f, "lookaside_storage_flush_latency_seconds",
                       "Time to commit one write-behind batch.", &m->storage_flush_latency);
    counter(f, "lookaside_dns_refreshes_total", "DNS discovery lookups answered.",
            LOAD(m->dns_refreshes));
    counter(f, "lookaside_dns_failures_total",
            "DNS discovery lookups that failed (the last known set is kept).",
            LOAD(m->dns_failures));
    counter(f, "lookaside_http_requests_total", "Requests to the HTTP endpoint.",
            LOAD(m->http_requests));
    counter(f, "lookaside_http_refused_total",
            "HTTP requests refused (peer not allowed or credentials missing/insufficient).",
            LOAD(m->http_refused));
}

/* ------------------------------------------------------------- process_* */

static int count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (d == NULL)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n - 1;   /* the directory's own fd */
}

/* Process start time in seconds since the epoch: /proc/self/stat field 22
 * (clock ticks after boot) + boot time from /proc/stat. */
static double start_time(void)
{
    char buf[1024];
    FILE *f = fopen("/proc/self/stat", "r");
    if (f == NULL)
        return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *p = strrchr(buf, ')');   /* the command may contain spaces */
    if (p == NULL)
        return 0;
    unsigned long long ticks = 0;
    /* After ")": state is field 3; starttime is field 22. */
    int field = 2;
    for (char *save = NULL, *t = strtok_r(p + 1, " ", &save); t; t = strtok_r(NULL, " ", &save)) {
        if (++field == 22) {
            ticks = strtoull(t, NULL, 10);
            break;
        }
    }
    f = fopen("/proc/stat", "r");
    if (f == NULL)
        return 0;
    unsigned long long btime = 0;
    while (fgets(buf, sizeof buf, f) != NULL)
        if (sscanf(buf, "btime %llu", &btime) == 1)
            break;
    fclose(f);
    long hz = sysconf(_SC_CLK_TCK);
    return btime ? (double)btime + (double)ticks / (double)(hz > 0 ? hz : 100) : 0;
}

void metrics_write_process(FILE *f)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) == 0) {
        double cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_stime.tv_sec +
                     ((double)ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_usec) / 1e6;
        header(f, "process_cpu_seconds_total", "counter", "User and system CPU time spent.");
        fprintf(f, "process_cpu_seconds_total %.6f\n", cpu);
    }
    unsigned long size = 0, resident = 0;
    FILE *sm = fopen("/proc/self/statm", "r");
    if (sm != NULL) {
        if (fscanf(sm, "%lu %lu", &size, &resident) == 2) {
            double page = (double)sysconf(_SC_PAGESIZE);
            header(f, "process_resident_memory_bytes", "gauge", "Resident memory size.");
            fprintf(f, "process_resident_memory_bytes %.0f\n", (double)resident * page);
            header(f, "process_virtual_memory_bytes", "gauge", "Virtual memory size.");
            fprintf(f, "process_virtual_memory_bytes %.0f\n", (double)size * page);
        }
        fclose(sm);
    }
    int fds = count_fds();
    if (fds >= 0) {
        header(f, "process_open_fds", "gauge", "Open file descriptors.");
        fprintf(f, "process_open_fds %d\n", fds);
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
        header(f, "process_max_fds", "gauge", "Limit on open file descriptors.");
        fprintf(f, "process_max_fds %llu\n", (unsigned long long)rl.rlim_cur);
    }
    double st = start_time();
    if (st > 0) {
        header(f, "process_start_time_seconds", "gauge",
               "Start time of the process since the Unix epoch.");
        fprintf(f, "process_start_time_seconds %.2f\n", st);
    }
}
