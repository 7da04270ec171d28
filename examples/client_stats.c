#include "client_stats.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_BACKENDS 256
#define NAME_LEN 128
#define STATUS_CODES 17     /* GRPC_STATUS_OK .. GRPC_STATUS_UNAUTHENTICATED */
#define SHOW_IDLE_SECONDS 10

/* A log-linear latency histogram: exact below 64 us, then 32 buckets per
 * power of two (about 3 % wide), up to 2^45 us. */
#define HIST_SUB 32
#define HIST_BUCKETS (64 + 40 * HIST_SUB)

typedef struct hist {
    uint64_t n[HIST_BUCKETS];
    uint64_t total;
} hist;

static int hist_index(int64_t v)
{
    if (v < 64)
        return v < 0 ? 0 : (int)v;
    int msb = 63 - __builtin_clzll((unsigned long long)v);
    int e = msb - 5; /* v >> e is in [32, 63] */
    int i = 64 + (e - 1) * HIST_SUB + (int)((v >> e) - HIST_SUB);
    return i < HIST_BUCKETS ? i : HIST_BUCKETS - 1;
}

/* Middle of bucket i, in us. */
static double hist_value(int i)
{
    if (i < 64)
        return (double)i;
    int e = (i - 64) / HIST_SUB + 1;
    double width = (double)(1ULL << e);
    double lo = (double)((i - 64) % HIST_SUB + HIST_SUB) * width;
    return lo + width / 2.0;
}

static void hist_add(hist *h, int64_t v)
{
    h->n[hist_index(v)]++;
    h->total++;
}

static double hist_pct(const hist *h, double p)
{
    if (h->total == 0)
        return 0;
    uint64_t rank = (uint64_t)(p * (double)h->total + 0.999999);
    if (rank == 0)
        rank = 1;
    uint64_t seen = 0;
    for (int i = 0; i < HIST_BUCKETS; i++) {
        seen += h->n[i];
        if (seen >= rank)
            return hist_value(i);
    }
    return hist_value(HIST_BUCKETS - 1);
}

/* Exact latencies of one second. */
typedef struct lat_vec {
    int64_t *v;
    size_t n, cap;
} lat_vec;

static void vec_push(lat_vec *a, int64_t x)
{
    if (a->n == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 256;
        int64_t *v = realloc(a->v, cap * sizeof *v);
        if (v == NULL)
            return; /* drop the sample; the count is kept separately */
        a->v = v;
        a->cap = cap;
    }
    a->v[a->n++] = x;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Nearest-rank percentile of a sorted vector, in ms. */
static double vec_pct_ms(const lat_vec *a, double p)
{
    if (a->n == 0)
        return 0;
    size_t rank = (size_t)(p * (double)a->n + 0.999999);
    if (rank == 0)
        rank = 1;
    if (rank > a->n)
        rank = a->n;
    return (double)a->v[rank - 1] / 1000.0;
}

static const char *status_name(int code)
{
    static const char *const names[STATUS_CODES] = {
        "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
        "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
        "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
        "UNAUTHENTICATED"};
    return code >= 0 && code < STATUS_CODES ? names[code] : "?";
}

typedef struct bstat {
    char name[NAME_LEN];
    char addr[NAME_LEN];      /* learned from replies: errors on addr count here */
    /* this second */
    uint64_t calls, errors;
    lat_vec lat;
    /* whole run */
    uint64_t total_calls, total_errors;
    int last_t;               /* last second with a call */
} bstat;

struct cstats {
    pthread_mutex_t mu;
    FILE *csv;
    FILE *trace;             /* one line per call, or NULL */
    bstat b[MAX_BACKENDS];
    int nb;
    /* this second, all backends */
    uint64_t calls, errors, skipped;
    lat_vec lat;
    /* whole run */
    uint64_t total_calls, total_errors, total_skipped;
    uint64_t by_status[STATUS_CODES];
    hist h;
};

lookaside_status cstats_create(FILE *csv, cstats **out)
{
    cstats *s = calloc(1, sizeof *s);
    if (s == NULL)
        return LOOKASIDE_ENOMEM;
    pthread_mutex_init(&s->mu, NULL);
    s->csv = csv;
    if (csv) {
        fprintf(csv, "t,backend,calls,p50_ms,p99_ms,errors\n");
        fflush(csv);
    }
    *out = s;
    return LOOKASIDE_OK;
}

static void copy_name(char *dst, const char *src)
{
    size_t n = strlen(src);
    if (n >= NAME_LEN)
        n = NAME_LEN - 1;
    memcpy(dst, src, n);
    dst[n] = '\0';
}

/* The entry for a successful call's name, created when new. Under mu. */
static bstat *by_name(cstats *s, const char *name)
{
    for (int i = 0; i < s->nb; i++)
        if (strncmp(s->b[i].name, name, NAME_LEN - 1) == 0)
            return &s->b[i];
    if (s->nb == MAX_BACKENDS)
        return &s->b[MAX_BACKENDS - 1]; /* absurdly many backends: lump the rest */
    bstat *b = &s->b[s->nb++];
    copy_name(b->name, name);
    return b;
}

/* The entry a failed call sent to addr belongs to. Under mu. */
static bstat *by_addr(cstats *s, const char *addr)
{
    for (int i = 0; i < s->nb; i++)
        if (strncmp(s->b[i].addr, addr, NAME_LEN - 1) == 0)
            return &s->b[i];
    return by_name(s, addr);
}

void cstats_record(cstats *s, const char *name, const char *addr, grpc_status_code status,
                   int64_t latency_us)
{
    bool ok = status == GRPC_STATUS_OK && name && name[0];
    if (addr == NULL || addr[0] == '\0')
        addr = "(none)";
    pthread_mutex_lock(&s->mu);
    bstat *b;
    if (ok) {
        b = by_name(s, name);
        if (b->addr[0] == '\0' && strcmp(addr, "(none)") != 0)
            copy_name(b->addr, addr);
    } else {
        b = by_addr(s, addr);
    }
    if (s->trace) {
        struct timespec now;
        clock_gettime(CLOCK_REALTIME, &now);
        long long end_us = (long long)now.tv_sec * 1000000 + now.tv_nsec / 1000;
        fprintf(s->trace, "%lld,%s,%s,%d,%lld\n", end_us - (long long)latency_us,
                ok ? name : "", addr, (int)status, (long long)latency_us);
    }
    b->calls++;
    b->total_calls++;
    s->calls++;
    s->total_calls++;
    if (ok) {
        vec_push(&b->lat, latency_us);
        vec_push(&s->lat, latency_us);
        hist_add(&s->h, latency_us);
    } else {
        b->errors++;
        b->total_errors++;
        s->errors++;
        s->total_errors++;
        int code = status == GRPC_STATUS_OK ? GRPC_STATUS_INTERNAL : (int)status;
        if (code >= 0 && code < STATUS_CODES)
            s->by_status[code]++;
    }
    pthread_mutex_unlock(&s->mu);
}

void cstats_set_trace(cstats *s, FILE *trace)
{
    pthread_mutex_lock(&s->mu);
    s->trace = trace;
    if (trace)
        fprintf(trace, "start_us,backend,address,status,latency_us\n");
    pthread_mutex_unlock(&s->mu);
}

void cstats_skipped(cstats *s)
{
    pthread_mutex_lock(&s->mu);
    s->skipped++;
    s->total_skipped++;
    pthread_mutex_unlock(&s->mu);
}

static void csv_row(FILE *csv, int t, const char *name, uint64_t calls, const lat_vec *lat,
                    uint64_t errors)
{
    /* Names are ours or addresses; quote only if one ever holds a comma. */
    bool quote = strchr(name, ',') != NULL;
    fprintf(csv, "%d,%s%s%s,%llu,", t, quote ? "\"" : "", name, quote ? "\"" : "",
            (unsigned long long)calls);
    if (lat->n)
        fprintf(csv, "%.3f,%.3f", vec_pct_ms(lat, 0.50), vec_pct_ms(lat, 0.99));
    else
        fprintf(csv, ",");
    fprintf(csv, ",%llu\n", (unsigned long long)errors);
}

/* Display order: by name, so that b1 b2 b3 stay in place whatever answered
 * first. Under mu. */
static int order_by_name(const cstats *s, int *idx)
{
    for (int i = 0; i < s->nb; i++) {
        int j = i;
        while (j > 0 && strcmp(s->b[idx[j - 1]].name, s->b[i].name) > 0) {
            idx[j] = idx[j - 1];
            j--;
        }
        idx[j] = i;
    }
    return s->nb;
}

void cstats_tick(cstats *s, int t, FILE *out, bool per_backend)
{
    int idx[MAX_BACKENDS];
    pthread_mutex_lock(&s->mu);
    int n = order_by_name(s, idx);
    qsort(s->lat.v, s->lat.n, sizeof *s->lat.v, cmp_i64);
    for (int k = 0; k < n; k++) {
        bstat *b = &s->b[idx[k]];
        if (b->calls)
            b->last_t = t;
        qsort(b->lat.v, b->lat.n, sizeof *b->lat.v, cmp_i64);
    }
    if (out) {
        fprintf(out, "t=%3ds  calls %5llu  err %3llu  p50 %6.1f ms  p99 %6.1f ms", t,
                (unsigned long long)s->calls, (unsigned long long)s->errors,
                vec_pct_ms(&s->lat, 0.50), vec_pct_ms(&s->lat, 0.99));
        if (s->skipped)
            fprintf(out, "  skipped %llu", (unsigned long long)s->skipped);
        fprintf(out, "  |");
        for (int k = 0; k < n; k++) {
            const bstat *b = &s->b[idx[k]];
            if (t - b->last_t > SHOW_IDLE_SECONDS)
                continue;
            double share = s->calls ? 100.0 * (double)b->calls / (double)s->calls : 0.0;
            fprintf(out, "  %s %5.1f%%", b->name, share);
            if (b->errors)
                fprintf(out, " (%llu err)", (unsigned long long)b->errors);
        }
        fprintf(out, "\n");
        for (int k = 0; per_backend && k < n; k++) {
            const bstat *b = &s->b[idx[k]];
            if (t - b->last_t <= SHOW_IDLE_SECONDS)
                fprintf(out, "        %-24s calls %5llu  err %3llu  p50 %6.1f ms  p99 %6.1f ms\n",
                        b->name, (unsigned long long)b->calls, (unsigned long long)b->errors,
                        vec_pct_ms(&b->lat, 0.50), vec_pct_ms(&b->lat, 0.99));
        }
        fflush(out);
    }
    if (s->csv) {
        for (int k = 0; k < n; k++) {
            const bstat *b = &s->b[idx[k]];
            if (t - b->last_t <= SHOW_IDLE_SECONDS)
                csv_row(s->csv, t, b->name, b->calls, &b->lat, b->errors);
        }
        csv_row(s->csv, t, "all", s->calls, &s->lat, s->errors);
        fflush(s->csv);
    }
    s->calls = s->errors = s->skipped = 0;
    s->lat.n = 0;
    for (int i = 0; i < s->nb; i++) {
        s->b[i].calls = s->b[i].errors = 0;
        s->b[i].lat.n = 0;
    }
    pthread_mutex_unlock(&s->mu);
}

uint64_t cstats_pending(cstats *s)
{
    pthread_mutex_lock(&s->mu);
    uint64_t n = s->calls;
    pthread_mutex_unlock(&s->mu);
    return n;
}

void cstats_summary(cstats *s, double seconds, FILE *out, cstats_totals *tot)
{
    pthread_mutex_lock(&s->mu);
    cstats_totals t = {
        .calls = s->total_calls,
        .errors = s->total_errors,
        .skipped = s->total_skipped,
        .p50_ms = hist_pct(&s->h, 0.50) / 1000.0,
        .p99_ms = hist_pct(&s->h, 0.99) / 1000.0,
        .p999_ms = hist_pct(&s->h, 0.999) / 1000.0,
    };
    if (out) {
        fprintf(out,
                "summary: %llu calls in %.1f s (%.1f/s), %llu failed (%.3f%%), %llu skipped; "
                "p50 %.1f ms, p99 %.1f ms, p99.9 %.1f ms\n",
                (unsigned long long)t.calls, seconds, seconds > 0 ? (double)t.calls / seconds : 0,
                (unsigned long long)t.errors,
                t.calls ? 100.0 * (double)t.errors / (double)t.calls : 0.0,
                (unsigned long long)t.skipped, t.p50_ms, t.p99_ms, t.p999_ms);
        if (t.errors) {
            fprintf(out, "  failures by status:");
            for (int c = 1; c < STATUS_CODES; c++)
                if (s->by_status[c])
                    fprintf(out, " %s=%llu", status_name(c),
                            (unsigned long long)s->by_status[c]);
            fprintf(out, "\n");
        }
        int idx[MAX_BACKENDS];
        int n = order_by_name(s, idx);
        for (int k = 0; k < n; k++) {
            const bstat *b = &s->b[idx[k]];
            fprintf(out, "  %-24s %8llu calls (%5.1f%%)  %llu failed\n", b->name,
                    (unsigned long long)b->total_calls,
                    t.calls ? 100.0 * (double)b->total_calls / (double)t.calls : 0.0,
                    (unsigned long long)b->total_errors);
        }
        fflush(out);
    }
    pthread_mutex_unlock(&s->mu);
    if (tot)
        *tot = t;
}

void cstats_destroy(cstats *s)
{
    if (s == NULL)
        return;
    for (int i = 0; i < s->nb; i++)
        free(s->b[i].lat.v);
    free(s->lat.v);
    pthread_mutex_destroy(&s->mu);
    free(s);
}
