/* ebr.h - epoch-based reclamation for what lookaside_pick reads without a
 * lock (pick snapshots and the backends they point to).
 *
 * Why this scheme: a pick must not take a mutex nor bump a counter shared
 * by every thread (a contended atomic costs more than the whole pick). So
 * each thread announces, in its own cache line, the global epoch it saw on
 * entering a pick; the background thread that replaced a snapshot frees the
 * old one only once no thread can still be reading it.
 *
 * Why it is safe:
 *  - Reader (ebr_enter .. ebr_exit): e = load(epoch, acquire);
 *    store(rec->active, e, seq_cst); p = load(ptr, seq_cst); use p.
 *  - Writer: exchange(ptr, new, seq_cst); tag = fetch_add(epoch, 1) (the
 *    value before the increment); later frees old once every record has
 *    active == 0 or active > tag (ebr_min_active() > tag).
 *  - A reader whose active is > tag read the epoch after the increment; the
 *    acquire pairs with the writer's increment, which follows the exchange,
 *    so its load of ptr returns the new pointer (or a later one).
 *  - A reader the writer sees with active == 0: all three are seq_cst, so
 *    the writer's scan precedes the reader's store of active in the single
 *    total order; the exchange precedes the scan, hence the reader's load of
 *    ptr (after its store) sees the new pointer. A stale epoch in active only
 *    delays reclamation, never hastens it.
 *  - Anything the reader did inside the section (e.g. counting a call in
 *    flight) is ordered before its release store of active = 0, so a writer
 *    that sees 0 also sees those effects.
 *
 * Records are per thread, allocated once, never freed (recycled when a
 * thread exits), linked in one process-wide list. Sections must not nest.
 * Everything here is thread-safe. */
#ifndef LA_EBR_H
#define LA_EBR_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

/* Per-thread rotating positions, indexed by a service's pos_slot. */
#define EBR_POS_SLOTS 64

struct ebr_rec {
    _Atomic uint64_t active; /* 0: not in a section; else the epoch seen */
    _Atomic int in_use;      /* owned by a live thread */
    uint32_t index;          /* creation order, for stripes */
    struct ebr_rec *next;    /* immutable once published */
    /* Only the owning thread touches these; lines of their own. */
    uint32_t pos[EBR_POS_SLOTS] __attribute__((aligned(128)));
    uint64_t rng; /* xorshift state for picks' second candidate; 0: unseeded */
} __attribute__((aligned(128))); /* 128: CPUs prefetch line pairs */

extern _Atomic uint64_t ebr_epoch;
extern _Thread_local struct ebr_rec *ebr_self __attribute__((tls_model("initial-exec")));

/* Slow path of ebr_thread: finds or makes this thread's record. Never
 * fails: on allocation failure it aborts (there is no sane way to pick). */
struct ebr_rec *ebr_register(void);

/* This thread's record. */
static inline struct ebr_rec *ebr_thread(void)
{
    struct ebr_rec *r = ebr_self;
    return r != NULL ? r : ebr_register();
}

static inline struct ebr_rec *ebr_enter(void)
{
    struct ebr_rec *r = ebr_thread();
    uint64_t e = atomic_load_explicit(&ebr_epoch, memory_order_acquire);
    atomic_store_explicit(&r->active, e, memory_order_seq_cst);
    return r;
}

static inline void ebr_exit(struct ebr_rec *r)
{
    atomic_store_explicit(&r->active, 0, memory_order_release);
}

/* Writer: call after unpublishing objects; tag them with the result. */
uint64_t ebr_retire_tag(void);

/* Writer: the smallest epoch a thread is in a section with, UINT64_MAX when
 * none is. Objects tagged t may be freed when t < ebr_min_active(). */
uint64_t ebr_min_active(void);

#endif
