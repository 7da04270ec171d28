/* Snapshot swapping under concurrent picks: several threads pick (and keep
 * some picks "in flight" for a while) while another thread keeps replacing
 * the backend set, publishing new snapshots and reclaiming old snapshots and
 * removed backends through the real ebr + retired_reclaim code. A backend
 * freed or closed too early shows up as an ASan use-after-free or as a
 * closed channel seen by a thread that still holds a pick on it. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ebr.h"
#include "pick.h"
#include "util.h"

#define READERS 4
#define RUN_MS 2000
#define HOLD 16

static _Atomic(pick_snap *) g_snap;
static _Atomic bool g_stop;
static _Atomic uint64_t g_errors;
static _Atomic uint64_t g_picks;
static _Atomic uint64_t g_swaps;

static void fake_close(la_backend *b)
{
    b->channel = NULL;
}

static void release_pick(la_backend *b)
{
    /* Like lookaside_pick_done: everything before the in-flight decrement. */
    if (b->channel == NULL || strncmp(b->addr, "10.", 3) != 0)
        atomic_fetch_add(&g_errors, 1);
    atomic_fetch_add_explicit(&b->stripes[ebr_thread()->index % LA_STRIPES].calls, 1,
                              memory_order_relaxed);
    atomic_fetch_sub_explicit(&b->stripes[ebr_thread()->index % LA_STRIPES].in_flight, 1,
                              memory_order_release);
}

static void *reader(void *arg)
{
    (void)arg;
    la_backend *held[HOLD] = {0};
    uint64_t n = 0, rng = 88172645463325252ULL;
    while (!atomic_load_explicit(&g_stop, memory_order_relaxed)) {
        struct ebr_rec *r = ebr_enter();
        pick_snap *s = atomic_load_explicit(&g_snap, memory_order_seq_cst);
        if (s == NULL) {
            ebr_exit(r);
            continue;
        }
        la_backend *b = pick_next(s, &r->pos[0], &rng, pick_stripe(r));
        pick_count(b, pick_stripe(r));
        ebr_exit(r);
        n++;
        /* Keep one pick in HOLD alive for a while, like a slow call. */
        if (n % 7 == 0) {
            size_t slot = (n / 7) % HOLD;
            if (held[slot])
                release_pick(held[slot]);
            held[slot] = b;
        } else {
            release_pick(b);
        }
    }
    for (size_t i = 0; i < HOLD; i++)
        if (held[i])
            release_pick(held[i]);
    atomic_fetch_add(&g_picks, n);
    return NULL;
}

static la_backend *new_backend(unsigned id)
{
    char addr[32];
    snprintf(addr, sizeof addr, "10.%u.%u.%u:80", (id >> 16) & 255, (id >> 8) & 255, id & 255);
    la_backend *b = backend_new(addr);
    b->channel = (grpc_channel *)(uintptr_t)(0x1000 + id);
    b->weight = 1 + id % 97;
    b->conn = GRPC_CHANNEL_READY;
    return b;
}

static void test_swap_under_picks(void **st)
{
    (void)st;
    pick_retired retired = {0};
    enum { MAXN = 64 };
    la_backend *cur[MAXN];
    size_t n = 0;
    unsigned next_id = 1;
    for (; n < 10; n++)
        cur[n] = new_backend(next_id++);
    pick_params pp = {NULL, false, 50};
    pick_snap *s;
    assert_int_equal(pick_snap_build(cur, n, &pp, &s), LOOKASIDE_OK);
    atomic_store(&g_snap, s);

    pthread_t th[READERS];
    for (int i = 0; i < READERS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, reader, NULL), 0);

    uint64_t rng = 88172645463325252ULL;
    int64_t end = clock_mono_ms() + RUN_MS;
    while (clock_mono_ms() < end) {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        /* Remove up to two, add up to two, reweight one. */
        la_backend *unlinked = NULL;
        for (int k = 0; k < (int)(rng % 3) && n > 2; k++) {
            size_t i = (size_t)((rng >> (8 * k)) % n);
            la_backend *b = cur[i];
            cur[i] = cur[--n];
            b->retired = true;
            b->next_retired = unlinked;
            unlinked = b;
        }
        for (int k = 0; k < (int)((rng >> 20) % 3) && n < MAXN; k++)
            cur[n++] = new_backend(next_id++);
        cur[(rng >> 30) % n]->weight = 1 + (uint32_t)((rng >> 40) % 1000);
        pick_snap *ns = NULL;
        assert_int_equal(pick_snap_build(cur, n, &pp, &ns), LOOKASIDE_OK);
        assert_non_null(ns);
        pick_snap *old = atomic_exchange_explicit(&g_snap, ns, memory_order_seq_cst);
        retired_add(&retired, old, unlinked, ebr_retire_tag());
        retired_reclaim(&retired, false, fake_close);
        atomic_fetch_add(&g_swaps, 1);
    }
    atomic_store(&g_stop, true);
    for (int i = 0; i < READERS; i++)
        pthread_join(th[i], NULL);

    /* Unpublish everything; with no reader left all of it must go. */
    la_backend *unlinked = NULL;
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(backend_in_flight(cur[i]), 0);
        cur[i]->retired = true;
        cur[i]->next_retired = unlinked;
        unlinked = cur[i];
    }
    retired_add(&retired, atomic_exchange(&g_snap, NULL), unlinked, ebr_retire_tag());
    assert_false(retired_reclaim(&retired, false, fake_close));
    assert_null(retired.snaps);
    assert_null(retired.backends);

    printf("# %llu picks, %llu swaps, %u backends created\n",
           (unsigned long long)atomic_load(&g_picks), (unsigned long long)atomic_load(&g_swaps),
           next_id - 1);
    assert_int_equal(atomic_load(&g_errors), 0);
    assert_true(atomic_load(&g_picks) > 10000);
    assert_true(atomic_load(&g_swaps) > 100);
}

/* A reader inside a section blocks reclamation of what it may hold; leaving
 * the section releases it. */
static void test_ebr_blocks(void **st)
{
    (void)st;
    struct ebr_rec *r = ebr_enter();
    uint64_t tag = ebr_retire_tag();
    assert_true(ebr_min_active() <= tag);
    ebr_exit(r);
    assert_true(ebr_min_active() > tag);
    /* Entering after the tag does not block it. */
    r = ebr_enter();
    assert_true(ebr_min_active() > tag);
    ebr_exit(r);
}

/* In-flight picks keep a retired backend's channel open. */
static void test_inflight_holds(void **st)
{
    (void)st;
    pick_retired retired = {0};
    la_backend *b = new_backend(1);
    struct ebr_rec *r = ebr_thread();
    pick_count(b, pick_stripe(r));
    b->retired = true;
    b->next_retired = NULL;
    retired_add(&retired, NULL, b, ebr_retire_tag());
    assert_true(retired_reclaim(&retired, false, fake_close));
    assert_non_null(b->channel);
    release_pick(b);
    assert_false(retired_reclaim(&retired, false, fake_close));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ebr_blocks),
        cmocka_unit_test(test_inflight_holds),
        cmocka_unit_test(test_swap_under_picks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
