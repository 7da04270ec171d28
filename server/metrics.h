/* metrics.h - the server's process-wide counters, for /metrics.
 *
 * Counters and gauges are relaxed atomics in one global struct: the loop
 * thread (and gRPC callbacks on it) increments them with one-line macros,
 * the HTTP thread reads them without locks. Nothing here allocates or
 * fails; a value read concurrently with an increment is either the old or
 * the new value, which is all a scrape needs.
 *
 * Per-service and per-backend figures (weights, versions, watchers, grpclb
 * client stats) are NOT kept here: the HTTP thread reads them from the
 * registry's snapshots (snapshot.h), so there is one source of truth.
 *
 * Histograms: fixed buckets in seconds (METRICS_BUCKETS below), counts per
 * bucket (non-cumulative; the writer accumulates), a count and a sum in
 * microseconds. */
#ifndef LA_METRICS_H
#define LA_METRICS_H

#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>

#include "lookaside_status.h"

/* Why a report stream or message was refused (the `reason` label). */
typedef enum metrics_reject {
    METRICS_REJECT_INVALID = 0,     /* bad field, undecodable */
    METRICS_REJECT_OVERSIZE,        /* larger than --max-report-bytes */
    METRICS_REJECT_UNAUTHENTICATED,
    METRICS_REJECT_PERMISSION,
    METRICS_REJECT_LIMIT,           /* --max-backends/--max-services/streams */
    METRICS_REJECT_OTHER,
    METRICS_REJECT_N
} metrics_reject;

#define METRICS_NBUCKETS 12
/* Upper bounds in seconds; the last bucket (+Inf) is implicit. */
extern const double metrics_buckets[METRICS_NBUCKETS];

typedef struct metrics_hist {
    atomic_uint_fast64_t bucket[METRICS_NBUCKETS + 1];
    atomic_uint_fast64_t count;
    atomic_uint_fast64_t sum_us;
} metrics_hist;

typedef struct metrics {
    atomic_uint_fast64_t reports_received;      /* Load messages accepted */
    atomic_uint_fast64_t reports_rejected[METRICS_REJECT_N];
    atomic_uint_fast64_t registrations;         /* Register messages accepted */
    atomic_uint_fast64_t evictions;             /* silent streams evicted */
    atomic_uint_fast64_t drains;                /* drains (reporter or admin) */
    atomic_uint_fast64_t publishes;             /* list versions published */
    atomic_uint_fast64_t pushes;                /* lists sent to Watch streams */
    metrics_hist push_latency;                  /* publish -> send completed */
    atomic_int_fast64_t grpclb_streams;         /* open BalanceLoad streams (gauge) */
    atomic_uint_fast64_t grpclb_lists;          /* grpclb server lists sent */
    atomic_uint_fast64_t storage_flushes;
    atomic_uint_fast64_t storage_errors;
    metrics_hist storage_flush_latency;
    atomic_uint_fast64_t dns_refreshes;         /* lookups answered */
    atomic_uint_fast64_t dns_failures;
    atomic_uint_fast64_t rpc_refused[METRICS_REJECT_N];  /* every rpc_fail, any method */
    atomic_uint_fast64_t http_requests;
    atomic_uint_fast64_t http_refused;          /* peers/credentials refused */
} metrics;

extern metrics la_metrics;

#define METRIC_INC(field) atomic_fetch_add_explicit(&la_metrics.field, 1, memory_order_relaxed)
#define METRIC_ADD(field, n) \
    atomic_fetch_add_explicit(&la_metrics.field, (n), memory_order_relaxed)
/* A refused call (rpc_fail): see metrics_refused. */
#define METRIC_REFUSED(path, st) metrics_refused((path), (st))
/* One storage flush that took `ns` and ended with status st. */
#define METRIC_FLUSHED(st, ns) metrics_flushed((st), (ns))
/* A gauge up or down by one. */
#define METRIC_GAUGE(field, d) \
    atomic_fetch_add_explicit(&la_metrics.field, (d), memory_order_relaxed)

/* Records one observation of `seconds` (negative counts as 0). Any thread. */
void metrics_observe(metrics_hist *h, double seconds);
/* Counts a call refused with st (rpc_fail): under the RPC totals, and under
 * reports rejected when path is LoadReporter/Report. Any thread. */
void metrics_refused(const char *path, lookaside_status st);
/* Counts a storage flush and observes its latency. Loop thread. */
void metrics_flushed(lookaside_status st, int64_t ns);
/* A list sent to a Watch stream has been written: observes the time since
 * *published_unix_ms (its publication) and clears it; nothing when 0 (a
 * heartbeat or nothing pending). Loop thread. */
void metrics_push_done(int64_t *published_unix_ms);
/* The `reason` label of r. */
const char *metrics_reject_name(metrics_reject r);

/* Writes every counter above in the Prometheus text format (HELP, TYPE,
 * `lookaside_` names, `_total` counters, base units) to f. Any thread. */
void metrics_write_counters(FILE *f);
/* Writes a histogram named name (without _bucket/_sum/_count). */
void metrics_write_hist(FILE *f, const char *name, const char *help, const metrics_hist *h);
/* Writes process_* metrics read from /proc/self now: CPU seconds, resident
 * and virtual memory, open and max fds, start time, threads. */
void metrics_write_process(FILE *f);

#endif
