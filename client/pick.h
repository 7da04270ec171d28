/* pick.h - the pick core: backends, immutable pick snapshots, and outlier
 * ejection. No gRPC calls here (channels are opaque pointers), so the unit
 * tests drive it directly.
 *
 * Ownership and threads: the background thread owns every la_backend and
 * builds snapshots; application threads only read a published snapshot
 * (inside an ebr section, see ebr.h) and touch a backend's atomic counters.
 * Fields are grouped by who may touch them. */
#ifndef LA_PICK_H
#define LA_PICK_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <grpc/grpc.h>

#include "bgloop.h"
#include "ebr.h"
#include "lookaside_status.h"
#include "util.h"

/* Per-backend counters are striped by thread so that two threads picking the
 * same backend do not fight over one cache line. in_flight is the sum over
 * stripes; a call is counted in flight on the stripe of the thread that
 * picked it and ended on that same stripe (the pick handle carries it), so
 * a stripe's in_flight is what its threads have in flight. Stripes are 128 bytes apart: CPUs prefetch cache lines
 * in adjacent pairs, so 64 would still let neighbours interfere. */
#define LA_STRIPES 8
#define LA_HOT_ALIGN 128

struct la_stripe {
    _Atomic int64_t in_flight;
    _Atomic uint64_t calls;
    _Atomic uint64_t failures;
    _Atomic uint64_t latency_us;
    /* Mean latency of the calls picked on this stripe that ended without a
     * fault, exponentially weighted (1/8 per call), in us; 0: none yet. */
    _Atomic uint32_t lat_ewma_us;
} __attribute__((aligned(LA_HOT_ALIGN)));

enum la_bstate { LA_SERVING = 0, LA_DRAINING = 1, LA_RESTORED = 2 };

typedef struct la_backend {
    /* Immutable while the backend is reachable from a snapshot. */
    grpc_channel *channel;
    char addr[LA_ADDR_STRLEN];
    bool is_fallback;         /* the fallback round_robin channel */
    struct la_service *svc;   /* owner (opaque here) */

    /* Any thread: pick_done counts consecutive failures. */
    _Atomic uint32_t consec_fail __attribute__((aligned(LA_HOT_ALIGN)));
    /* The connection broke: the channel left READY (set by the background
     * thread) or a call ended UNAVAILABLE while the channel was not READY
     * (set by pick_done). Picks skip it at once, before a new snapshot
     * without it is published; cleared when the channel is READY again. */
    _Atomic bool down;
    struct la_stripe stripes[LA_STRIPES];

    /* Background thread (written under the client mutex when listed). */
    uint32_t weight;
    enum la_bstate state;
    char zone[64];
    char token[64];
    grpc_connectivity_state conn;
    bool ejected;
    bool pickable;            /* in the published snapshot */
    bool held;                /* kept by self-preservation, not in the last list */
    uint32_t times_ejected;
    uint64_t win_calls, win_fails; /* totals at the start of the window */
    uint32_t win_pct;         /* failure % of the last window, when judged */
    bool fp_fail;             /* over the failure-percentage threshold */
    int64_t eject_until_ms;
    int64_t eject_end_ms;     /* when the last ejection ended */

    /* Background thread only. */
    bool retired;             /* left the list; freed when safe */
    bool preserve, dropped;   /* on_list's self-preservation plan */
    uint64_t retire_tag;      /* ebr tag */
    bool watch_pending;       /* a connectivity watch is on the queue */
    bgloop_event conn_ev;
    struct la_backend *next_retired;
} la_backend;

/* Allocates a zeroed, LA_HOT_ALIGN-aligned backend with address addr (copied). */
la_backend *backend_new(const char *addr);
void backend_free(la_backend *b);
/* Sum of in_flight over stripes (acquire loads). */
int64_t backend_in_flight(la_backend *b);
/* Totals over stripes, for info. */
void backend_totals(la_backend *b, uint64_t *calls, uint64_t *failures, uint64_t *latency_us);

/* True when the connectivity state counts as failed for picking. */
static inline bool conn_failed(grpc_connectivity_state s)
{
    return s == GRPC_CHANNEL_TRANSIENT_FAILURE || s == GRPC_CHANNEL_SHUTDOWN;
}

/* One entry of a snapshot's table: the backend and its weight side by side,
 * so that a candidate costs one load before its counters. */
typedef struct pick_slot {
    la_backend *b;
    uint64_t w; /* weight when the snapshot was built */
} pick_slot;

/* An immutable pick snapshot. One allocation: header, backends, table. */
typedef struct pick_snap {
    uint32_t n;              /* backends in the snapshot, >= 1 */
    uint32_t len;            /* table length, >= 1 */
    la_backend **backends;
    pick_slot *table;        /* smooth-WRR order */
    bool zone_local;         /* restricted to the client's zone */
    bool degraded;           /* no healthy backend: picking among failed ones */
    /* Background thread: retirement. */
    uint64_t retire_tag;
    struct pick_snap *next_retired;
} pick_snap;

typedef struct pick_params {
    const char *zone;           /* client zone, NULL/"" none */
    bool zone_affinity;
    uint32_t zone_min_healthy_percent;
} pick_params;

/* Table length for n backends: min(4096, max(64, 16 n)), but at least n so
 * that every backend has a slot. */
size_t pick_table_len(size_t n);

/* Builds a snapshot from list[0..n) (the service's current backends) by the
 * rules in lookaside.h: excludes retired, DRAINING and weight-0 backends;
 * prefers healthy (not ejected, channel not failed), then non-ejected, then
 * any; applies zone preference. Sets each backend's pickable flag. *out is
 * NULL (with LOOKASIDE_OK) when nothing is pickable. Background thread. */
lookaside_status pick_snap_build(la_backend *const *list, size_t n, const pick_params *p,
                                 pick_snap **out);
/* A snapshot of the single backend b (the fallback channel). */
lookaside_status pick_snap_single(la_backend *b, pick_snap **out);
void pick_snap_free(pick_snap *s);

/* Out of line: b is down; the next table entries that are not (a bounded
 * walk), or b when every one looked at is down. */
la_backend *pick_skip_down(const pick_snap *s, uint32_t *pos, la_backend *b);

/* The stripe a thread counts its picks on. */
static inline unsigned pick_stripe(const struct ebr_rec *r)
{
    return r->index % LA_STRIPES;
}

/* Calls picked on stripe k and not yet done (never negative: pick_done
 * ends a call on the stripe it was picked on). */
static inline uint64_t stripe_in_flight(const la_backend *b, unsigned k)
{
    int64_t v = atomic_load_explicit(&b->stripes[k].in_flight, memory_order_relaxed);
    return v > 0 ? (uint64_t)v : 0;
}

/* The mean latency stripe k has seen for b (0: none yet). */
static inline uint64_t stripe_latency(const la_backend *b, unsigned k)
{
    return atomic_load_explicit(&b->stripes[k].lat_ewma_us, memory_order_relaxed);
}

/* The pick itself, weighted power of two choices: the first candidate is
 * the next entry of the smooth-WRR table from *pos (a per-thread position),
 * the second a random entry (*rng, a per-thread xorshift state) - both
 * drawn by weight. The second wins only when its cost relative to its
 * weight is strictly lower (cost2 / w2 < cost1 / w1). The cost is the calls
 * in flight times their mean latency - how long a new call would wait
 * behind them - once both candidates have a latency on this stripe, else
 * the calls in flight alone. So with nothing in flight the shares are
 * exactly the weights, and under load a backend that is slow to answer
 * (calls pile up, each takes longer) gets less than its weight at once,
 * before the balancer's weights say so: at a cold start, when every weight
 * is still equal, this is what keeps a backend of half the capacity from
 * queueing. In-flight counts and latencies are those picked on the calling
 * thread's stripe k: exact for a thread that makes all the calls, a
 * per-thread sample otherwise, and local to the thread's cache. */
static inline la_backend *pick_next(const pick_snap *s, uint32_t *pos, uint64_t *rng, unsigned k)
{
    uint32_t p = *pos;
    if (p >= s->len)
        p %= s->len;
    *pos = p + 1;
    const pick_slot *e = &s->table[p];
    la_backend *b = e->b;
    if (__builtin_expect(atomic_load_explicit(&b->down, memory_order_relaxed), 0))
        return pick_skip_down(s, pos, b);
    if (s->n < 2)
        return b;
    uint64_t x = *rng;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *rng = x;
    uint64_t ib = stripe_in_flight(b, k);
    if (ib == 0)
        return b; /* nothing in flight: it cannot lose */
    const pick_slot *f = &s->table[(uint32_t)(((x >> 32) * (uint64_t)s->len) >> 32)];
    la_backend *c = f->b;
    uint64_t ic = stripe_in_flight(c, k);
    uint64_t lb = stripe_latency(b, k), lc = stripe_latency(c, k);
    if (lb == 0 || lc == 0)
        lb = lc = 1;
    /* Branch-free: the outcome is close to random, a branch would often be
     * mispredicted. The same backend twice compares equal and keeps b.
     * in flight x latency < 2^63 x 2^24: 128 bits hold it times a weight. */
    bool take = ((unsigned __int128)(ic * lc) * e->w < (unsigned __int128)(ib * lb) * f->w) &
                !atomic_load_explicit(&c->down, memory_order_relaxed);
    uintptr_t m = (uintptr_t)0 - (uintptr_t)take;
    return (la_backend *)(((uintptr_t)c & m) | ((uintptr_t)b & ~m));
}

/* Counts a pick on stripe k (pick_stripe of the picking thread). */
static inline void pick_count(la_backend *b, unsigned k)
{
    atomic_fetch_add_explicit(&b->stripes[k].in_flight, 1, memory_order_relaxed);
}

/* What the background thread has unpublished and frees once safe: a
 * snapshot when no pick section that could have loaded it is still running
 * (ebr), a backend when, in addition, no call picked on it is in flight. */
typedef struct pick_retired {
    pick_snap *snaps;
    la_backend *backends;
} pick_retired;

/* Queues old (may be NULL) and the backends chained by next_retired from
 * unlinked (may be NULL) under tag, the ebr_retire_tag() taken right after
 * the snapshot that no longer reaches them was published. */
void retired_add(pick_retired *r, pick_snap *old, la_backend *unlinked, uint64_t tag);

/* Frees what is safe now. For a backend that became unreachable and idle,
 * close(b) is called once; it must set b->channel to NULL (it destroys the
 * channel). The struct is freed once b->channel is NULL and no connectivity
 * watch is pending. force: ignore in-flight counts (teardown). Returns true
 * when something is still waiting. */
bool retired_reclaim(pick_retired *r, bool force, void (*close)(la_backend *b));

/* Statuses that say the backend is broken (counted for ejection), as
 * opposed to the caller's own errors (CANCELLED, INVALID_ARGUMENT,
 * DEADLINE_EXCEEDED, ...) and answers about the request. */
static inline bool status_is_fault(grpc_status_code s)
{
    return s == GRPC_STATUS_UNAVAILABLE || s == GRPC_STATUS_UNIMPLEMENTED ||
           s == GRPC_STATUS_INTERNAL || s == GRPC_STATUS_UNKNOWN || s == GRPC_STATUS_DATA_LOSS;
}

typedef struct eject_params {
    uint32_t consecutive;  /* failures that eject */
    int64_t base_ms;
    int64_t max_ms;
    uint32_t max_percent;  /* of the listed backends, at least one */
    /* Failure-percentage ejection (gRFC A50): over each window of
     * fp_interval_ms, a backend with at least fp_min_volume calls of which
     * at least fp_threshold % failed is ejected. fp_threshold 0: off. */
    uint32_t fp_threshold;
    uint32_t fp_min_volume;
    int64_t fp_interval_ms;
} eject_params;

/* Ends a failure-percentage window: judges each backend on the calls and
 * failures counted since the previous call (or since it was created) into
 * b->fp_fail, and starts the next window. Background thread. */
void eject_window(la_backend *const *list, size_t n, const eject_params *p);

/* Ends ejections that are due (resetting their failure count), then ejects
 * backends with at least p->consecutive consecutive failures or judged
 * failing by the last window, while fewer than the cap are ejected.
 * Returns true when any backend changed. *next_ms is lowered to the
 * earliest pending ejection end. Background thread. */
bool eject_update(la_backend *const *list, size_t n, const eject_params *p, int64_t now_ms,
                  int64_t *next_ms);

/* The cap on ejected backends for n listed backends. */
size_t eject_cap(size_t n, uint32_t max_percent);

#endif
