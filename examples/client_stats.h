/* client_stats.h - the demo client's bookkeeping: per second and per
 * backend, the calls that ended, their latency percentiles and errors;
 * totals for the summary; CSV rows for charts.
 *
 * Calls are attributed to the second in which they END. A successful call
 * is counted under the backend name its reply carries; a failed one under
 * the address it was sent to, translated to that backend's name when an
 * earlier reply from the same address taught the mapping.
 *
 * Thread-safety: cstats_record and cstats_skipped from any thread (one
 * mutex); cstats_tick, cstats_summary and cstats_destroy from one thread. */
#ifndef CLIENT_STATS_H
#define CLIENT_STATS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <grpc/status.h>

#include "lookaside_status.h"

typedef struct cstats cstats;

/* csv (may be NULL; not closed by the module) receives the header
 * "t,backend,calls,p50_ms,p99_ms,errors" at once and rows at each tick. */
lookaside_status cstats_create(FILE *csv, cstats **out);

/* One call ended. name: the backend named in the reply (NULL when the call
 * failed); addr: where it was sent ("ip:port"; NULL or "" when unknown);
 * status: how it ended; latency_us: from start to end. */
void cstats_record(cstats *s, const char *name, const char *addr, grpc_status_code status,
                   int64_t latency_us);

/* One call was not sent because --concurrency calls were already in flight. */
void cstats_skipped(cstats *s);

/* From now on, every call cstats_record counts is also written to trace (not
 * closed by the module; NULL stops) as one CSV line
 * start_us,backend,address,status,latency_us: start_us is the call's start
 * on the realtime clock (microseconds since the epoch), so that scripts can
 * line calls up with other events. Writes the header line. Before any load. */
void cstats_set_trace(cstats *s, FILE *trace);

/* Closes second t (1 = the first second of the run): prints one line to out
 * (NULL: no line), with one more line per backend when per_backend, writes
 * its CSV rows, and starts the next second. */
void cstats_tick(cstats *s, int t, FILE *out, bool per_backend);

/* Calls ended (ok or not) since the last tick. */
uint64_t cstats_pending(cstats *s);

typedef struct cstats_totals {
    uint64_t calls;     /* ended, ok or not */
    uint64_t errors;
    uint64_t skipped;
    double p50_ms, p99_ms, p999_ms;   /* successful calls */
} cstats_totals;

/* Totals of the whole run; prints the summary to out when out is not NULL. */
void cstats_summary(cstats *s, double seconds, FILE *out, cstats_totals *tot);

/* destroy(NULL) is a no-op. */
void cstats_destroy(cstats *s);

#endif
