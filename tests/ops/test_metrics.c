/* server/metrics.c: histogram buckets are cumulative and agree with the
 * count, refusals land under the right reason (and under reports only for
 * LoadReporter/Report), a push is observed once, the process figures are
 * there. The text format as a whole is checked by promtool in it.ops.http_*. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "metrics.h"

static char *render(void (*fn)(FILE *))
{
    /* Static: GCC -O2's -Wdangling-pointer takes the memstream's buffer for
     * a pointer into a local when buf lives on the stack (false positive). */
    static char *buf;
    static size_t len;
    buf = NULL;
    len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    fn(f);
    assert_int_equal(fclose(f), 0);
    return buf;
}

static metrics_hist g_h;
static void write_h(FILE *f) { metrics_write_hist(f, "t_seconds", "test", &g_h); }

static void test_histogram(void **st)
{
    (void)st;
    memset(&g_h, 0, sizeof g_h);
    double obs[] = {0.0001, 0.001, 0.003, 0.003, 0.2, 99, -1, 0.0 / 0.0};
    for (size_t i = 0; i < sizeof obs / sizeof obs[0]; i++)
        metrics_observe(&g_h, obs[i]);
    char *t = render(write_h);
    /* <= 0.0005: 0.0001, -1 (as 0), NaN (as 0); <= 0.001: + 0.001;
     * <= 0.005: + 2 x 0.003; <= 0.25: + 0.2; +Inf: + 99. */
    assert_non_null(strstr(t, "# TYPE t_seconds histogram\n"));
    assert_non_null(strstr(t, "t_seconds_bucket{le=\"0.0005\"} 3\n"));
    assert_non_null(strstr(t, "t_seconds_bucket{le=\"0.001\"} 4\n"));
    assert_non_null(strstr(t, "t_seconds_bucket{le=\"0.005\"} 6\n"));
    assert_non_null(strstr(t, "t_seconds_bucket{le=\"0.25\"} 7\n"));
    assert_non_null(strstr(t, "t_seconds_bucket{le=\"2.5\"} 7\n"));
    assert_non_null(strstr(t, "t_seconds_bucket{le=\"+Inf\"} 8\n"));
    assert_non_null(strstr(t, "t_seconds_count 8\n"));
    double sum = 0;
    char *s = strstr(t, "t_seconds_sum ");
    assert_non_null(s);
    sum = strtod(s + 14, NULL);
    assert_true(sum > 99.2 && sum < 99.21);
    free(t);
}

static void write_counters(FILE *f) { metrics_write_counters(f); }

static void test_refusals(void **st)
{
    (void)st;
    memset(&la_metrics, 0, sizeof la_metrics);
    metrics_refused("/lookaside.v1.LoadReporter/Report", LOOKASIDE_ETOOBIG);
    metrics_refused("/lookaside.v1.LoadReporter/Report", LOOKASIDE_EINVAL);
    metrics_refused("/lookaside.v1.LoadReporter/Report", LOOKASIDE_EINVAL);
    metrics_refused("/lookaside.v1.Balancer/Watch", LOOKASIDE_EPERM);
    metrics_refused(NULL, LOOKASIDE_ENOMEM);
    METRIC_INC(registrations);
    METRIC_GAUGE(grpclb_streams, 1);
    METRIC_GAUGE(grpclb_streams, 1);
    METRIC_GAUGE(grpclb_streams, -1);
    char *t = render(write_counters);
    assert_non_null(strstr(t, "lookaside_reports_rejected_total{reason=\"oversize\"} 1\n"));
    assert_non_null(strstr(t, "lookaside_reports_rejected_total{reason=\"invalid\"} 2\n"));
    assert_non_null(strstr(t, "lookaside_reports_rejected_total{reason=\"permission\"} 0\n"));
    assert_non_null(strstr(t, "lookaside_rpc_refused_total{reason=\"permission\"} 1\n"));
    assert_non_null(strstr(t, "lookaside_rpc_refused_total{reason=\"other\"} 1\n"));
    assert_non_null(strstr(t, "lookaside_rpc_refused_total{reason=\"invalid\"} 2\n"));
    assert_non_null(strstr(t, "lookaside_registrations_total 1\n"));
    assert_non_null(strstr(t, "lookaside_grpclb_streams 1\n"));
    /* Every family has HELP and TYPE. */
    assert_non_null(strstr(t, "# HELP lookaside_reports_received_total "));
    assert_non_null(strstr(t, "# TYPE lookaside_reports_received_total counter\n"));
    free(t);
}

static void test_push_and_flush(void **st)
{
    (void)st;
    memset(&la_metrics, 0, sizeof la_metrics);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t published = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 - 3;
    metrics_push_done(&published);
    assert_int_equal(published, 0);
    metrics_push_done(&published);   /* a heartbeat's completion: nothing */
    assert_int_equal(la_metrics.pushes, 1);
    assert_int_equal(la_metrics.push_latency.count, 1);
    metrics_flushed(LOOKASIDE_OK, 2000000);
    metrics_flushed(LOOKASIDE_EIO, 1);
    assert_int_equal(la_metrics.storage_flushes, 1);
    assert_int_equal(la_metrics.storage_errors, 1);
    assert_int_equal(la_metrics.storage_flush_latency.count, 1);
    assert_int_equal(la_metrics.storage_flush_latency.bucket[2], 1);   /* 2 ms: <= 0.0025 s */
}

static void test_process(void **st)
{
    (void)st;
    char *t = render(metrics_write_process);
    assert_non_null(strstr(t, "# TYPE process_cpu_seconds_total counter\n"));
    /* Samples start a line (the names also occur in "# HELP" lines). */
    char *rss = strstr(t, "\nprocess_resident_memory_bytes ");
    assert_non_null(rss);
    assert_true(strtod(rss + 31, NULL) > 0);
    char *fds = strstr(t, "\nprocess_open_fds ");
    assert_non_null(fds);
    assert_true(atoi(fds + 18) >= 3);
    char *start = strstr(t, "\nprocess_start_time_seconds ");
    assert_non_null(start);
    double s = strtod(start + 28, NULL);
    assert_true(s > 1.5e9 && s <= (double)time(NULL) + 1);
    free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_histogram),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_push_and_flush),
        cmocka_unit_test(test_process),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
