/* Unit tests for the pick core: weights, list changes, exclusions, zone
 * preference, outlier ejection. No gRPC: channels are dummy pointers. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pick.h"

#define PICKS 100000

static grpc_channel *dummy_channel(int i)
{
    return (grpc_channel *)(uintptr_t)(0x1000 + 16 * i);
}

static la_backend *mk(int i, uint32_t weight, const char *zone)
{
    char addr[32];
    snprintf(addr, sizeof addr, "10.0.0.%d:5000", i + 1);
    la_backend *b = backend_new(addr);
    assert_non_null(b);
    b->channel = dummy_channel(i);
    b->weight = weight;
    b->conn = GRPC_CHANNEL_READY;
    snprintf(b->zone, sizeof b->zone, "%s", zone ? zone : "");
    return b;
}

static void free_all(la_backend **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        backend_free(v[i]);
}

static const pick_params no_zone = {NULL, false, 50};

/* Counts picks per backend in v[0..n) over `picks` picks of s. */
static void count_picks(const pick_snap *s, la_backend **v, size_t n, size_t *counts, int picks)
{
    memset(counts, 0, n * sizeof *counts);
    uint32_t pos = 12345; /* arbitrary start: any offset keeps the proportions */
    uint64_t rng = 88172645463325252ULL;
    for (int k = 0; k < picks; k++) {
        la_backend *b = pick_next(s, &pos, &rng, 0);
        size_t i;
        for (i = 0; i < n; i++)
            if (v[i] == b)
                break;
        assert_true(i < n);
        counts[i]++;
    }
}

/* Shares within 1 percentage point of weight / sum(weights of the eligible). */
static void assert_shares(const size_t *counts, const uint32_t *expect_w, size_t n, int picks)
{
    uint64_t sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += expect_w[i];
    for (size_t i = 0; i < n; i++) {
        double want = sum ? (double)expect_w[i] / (double)sum : 0;
        double got = (double)counts[i] / picks;
        if (got < want - 0.01 || got > want + 0.01)
            fail_msg("backend %zu: share %.4f, want %.4f", i, got, want);
        if (expect_w[i] == 0)
            assert_int_equal(counts[i], 0);
    }
}

static void test_distribution(void **st)
{
    (void)st;
    /* A spread like the balancer's (it clamps weights to a band around the
     * mean): 1 : 400 between the lightest and the heaviest. */
    static const uint32_t w[] = {100, 200, 300, 400, 1000, 37, 999, 5000, 12, 777};
    la_backend *v[10];
    for (int i = 0; i < 10; i++)
        v[i] = mk(i, w[i], NULL);
    pick_snap *s;
    assert_int_equal(pick_snap_build(v, 10, &no_zone, &s), LOOKASIDE_OK);
    assert_non_null(s);
    assert_true(s->len <= pick_table_len(10));
    size_t counts[10];
    count_picks(s, v, 10, counts, PICKS);
    assert_shares(counts, w, 10, PICKS);
    pick_snap_free(s);

    /* Small integer weights are exact: 1:2:3:4 gives exactly 10 % .. 40 %. */
    static const uint32_t w2[] = {1, 2, 3, 4};
    for (int i = 0; i < 4; i++)
        v[i]->weight = w2[i];
    assert_int_equal(pick_snap_build(v, 4, &no_zone, &s), LOOKASIDE_OK);
    count_picks(s, v, 4, counts, PICKS);
    for (int i = 0; i < 4; i++)
        assert_int_equal(counts[i], PICKS / 10 * (i + 1));
    /* Smooth: the heaviest never comes more than twice in a row here. */
    uint32_t pos = 0;
    uint64_t rng = 1;
    int run = 0, max_run = 0;
    la_backend *prev = NULL;
    for (int k = 0; k < 1000; k++) {
        la_backend *b = pick_next(s, &pos, &rng, 0);
        run = b == prev ? run + 1 : 1;
        prev = b;
        if (run > max_run)
            max_run = run;
    }
    assert_true(max_run <= 2);
    pick_snap_free(s);
    free_all(v, 10);
}

static void test_add_remove(void **st)
{
    (void)st;
    la_backend *v[6];
    for (int i = 0; i < 6; i++)
        v[i] = mk(i, (uint32_t)(100 * (i + 1)), NULL);
    size_t counts[6];
    pick_snap *s;
    /* List A: 0..3. */
    assert_int_equal(pick_snap_build(v, 4, &no_zone, &s), LOOKASIDE_OK);
    count_picks(s, v, 6, counts, PICKS);
    uint32_t wa[6] = {100, 200, 300, 400, 0, 0};
    assert_shares(counts, wa, 6, PICKS);
    pick_snap_free(s);
    /* List B: 1 removed, 4 and 5 added (the list is what the client keeps). */
    la_backend *b_list[] = {v[0], v[2], v[3], v[4], v[5]};
    v[1]->retired = true;
    assert_int_equal(pick_snap_build(b_list, 5, &no_zone, &s), LOOKASIDE_OK);
    count_picks(s, v, 6, counts, PICKS);
    uint32_t wb[6] = {100, 0, 300, 400, 500, 600};
    assert_shares(counts, wb, 6, PICKS);
    assert_true(v[0]->pickable);
    assert_true(v[5]->pickable);
    /* A retired backend still in the array handed over is skipped too. */
    pick_snap_free(s);
    la_backend *c_list[] = {v[0], v[1], v[2]};
    assert_int_equal(pick_snap_build(c_list, 3, &no_zone, &s), LOOKASIDE_OK);
    count_picks(s, v, 6, counts, PICKS);
    uint32_t wc[6] = {100, 0, 300, 0, 0, 0};
    assert_shares(counts, wc, 6, PICKS);
    pick_snap_free(s);
    /* Weight changes are followed. */
    v[1]->retired = false;
    v[0]->weight = 900;
    assert_int_equal(pick_snap_build(c_list, 3, &no_zone, &s), LOOKASIDE_OK);
    count_picks(s, v, 6, counts, PICKS);
    uint32_t wd[6] = {900, 200, 300, 0, 0, 0};
    assert_shares(counts, wd, 6, PICKS);
    pick_snap_free(s);
    /* Empty list: nothing to pick. */
    assert_int_equal(pick_snap_build(v, 0, &no_zone, &s), LOOKASIDE_OK);
    assert_null(s);
    free_all(v, 6);
}

/* Weighted power of two choices: with nothing in flight (every test
 * above) or in flight in proportion to weight, the shares are the weights;
 * a backend with more in flight than its weight warrants gets less. */
static void test_p2c(void **st)
{
    (void)st;
    la_backend *v[2] = {mk(0, 300, NULL), mk(1, 100, NULL)};
    pick_snap *s;
    assert_int_equal(pick_snap_build(v, 2, &no_zone, &s), LOOKASIDE_OK);
    size_t counts[2];
    atomic_store(&v[0]->stripes[0].in_flight, 3);
    atomic_store(&v[1]->stripes[0].in_flight, 1);
    count_picks(s, v, 2, counts, PICKS);
    uint32_t w[2] = {300, 100};
    assert_shares(counts, w, 2, PICKS);
    /* The heavy one is slow: 30 in flight. It keeps only the picks where
     * both candidates are itself: 0.75 x 0.75. */
    atomic_store(&v[0]->stripes[0].in_flight, 30);
    count_picks(s, v, 2, counts, PICKS);
    double share = (double)counts[0] / PICKS;
    assert_true(share > 0.55 && share < 0.58);
    /* Another thread's stripe does not count for this one. */
    atomic_store(&v[0]->stripes[0].in_flight, 3);
    atomic_store(&v[0]->stripes[1].in_flight, 1000);
    count_picks(s, v, 2, counts, PICKS);
    assert_shares(counts, w, 2, PICKS);
    /* A down backend is never chosen, as first candidate or second (even
     * with fewer calls in flight). */
    atomic_store(&v[0]->stripes[0].in_flight, 30);
    atomic_store(&v[1]->down, true);
    count_picks(s, v, 2, counts, PICKS);
    assert_int_equal(counts[1], 0);
    pick_snap_free(s);
    free_all(v, 2);
}

/* Once both candidates have a latency, the cost is in flight x latency:
 * the same calls in flight on a backend that takes twice as long make it
 * lose every comparison (it keeps only the picks where it is both
 * candidates: 0.5 x 0.5); an unknown latency leaves the in-flight rule. */
/* What stripe 0 has seen of b: calls in flight and their mean latency. */
static void stripe0_load(la_backend *b, int64_t in_flight, uint32_t latency_us)
{
    atomic_store(&b->stripes[0].in_flight, in_flight);
    atomic_store(&b->stripes[0].lat_ewma_us, latency_us);
}

static void test_p2c_latency(void **st)
{
    (void)st;
    la_backend *v[2] = {mk(0, 100, NULL), mk(1, 100, NULL)};
    pick_snap *s;
    assert_int_equal(pick_snap_build(v, 2, &no_zone, &s), LOOKASIDE_OK);
    size_t counts[2];
    uint32_t w[2] = {100, 100};
    stripe0_load(v[0], 4, 40000);
    stripe0_load(v[1], 4, 0);
    count_picks(s, v, 2, counts, PICKS);
    assert_shares(counts, w, 2, PICKS);
    stripe0_load(v[1], 4, 20000);
    count_picks(s, v, 2, counts, PICKS);
    double share = (double)counts[0] / PICKS;
    assert_true(share > 0.23 && share < 0.27);
    /* Fewer calls in flight can make up for a longer latency: 2 x 40 ms
     * against 4 x 20 ms is a tie, and a tie keeps the first candidate. */
    stripe0_load(v[0], 2, 40000);
    count_picks(s, v, 2, counts, PICKS);
    assert_shares(counts, w, 2, PICKS);
    pick_snap_free(s);
    free_all(v, 2);
}

/* A backend whose connection broke (down) is skipped by picks on the
 * snapshot already published, and left out of the next one. */
static void test_down(void **st)
{
    (void)st;
    la_backend *v[3];
    for (int i = 0; i < 3; i++)
        v[i] = mk(i, 100, NULL);
    pick_snap *s;
    assert_int_equal(pick_snap_build(v, 3, &no_zone, &s), LOOKASIDE_OK);
    size_t counts[3];
    atomic_store(&v[1]->down, true);
    count_picks(s, v, 3, counts, PICKS);
    uint32_t w[3] = {100, 0, 100};
    assert_shares(counts, w, 3, PICKS);
    pick_snap_free(s);
    assert_int_equal(pick_snap_build(v, 3, &no_zone, &s), LOOKASIDE_OK);
    assert_int_equal(s->n, 2);
    assert_false(v[1]->pickable);
    assert_false(s->degraded);
    pick_snap_free(s);
    /* Everything down: still a pick (a failing call beats no call). */
    atomic_store(&v[0]->down, true);
    atomic_store(&v[2]->down, true);
    assert_int_equal(pick_snap_build(v, 3, &no_zone, &s), LOOKASIDE_OK);
    assert_true(s->degraded);
    count_picks(s, v, 3, counts, 3000);
    assert_int_equal(counts[0] + counts[1] + counts[2], 3000);
    pick_snap_free(s);
    free_all(v, 3);
}

static void test_exclusions(void **st)
{
    (void)st;
    la_backend *v[6];
    for (int i = 0; i < 6; i++)
        v[i] = mk(i, 100, NULL);
    v[0]->state = LA_DRAINING;
    v[1]->weight = 0;
    v[2]->ejected = true;
    v[3]->conn = GRPC_CHANNEL_TRANSIENT_FAILURE;
    v[4]->conn = GRPC_CHANNEL_CONNECTING; /* connecting is fine */
    v[5]->state = LA_RESTORED;            /* restored is fine (fail static) */
    size_t counts[6];
    pick_snap *s;
    assert_int_equal(pick_snap_build(v, 6, &no_zone, &s), LOOKASIDE_OK);
    count_picks(s, v, 6, counts, PICKS);
    uint32_t w[6] = {0, 0, 0, 0, 100, 100};
    assert_shares(counts, w, 6, PICKS);
    assert_false(s->degraded);
    pick_snap_free(s);
    /* IDLE and SHUTDOWN: idle is pickable, shutdown is not. */
    v[4]->conn = GRPC_CHANNEL_IDLE;
    v[5]->conn = GRPC_CHANNEL_SHUTDOWN;
    assert_int_equal(pick_snap_build(v, 6, &no_zone, &s), LOOKASIDE_OK);
    count_picks(s, v, 6, counts, PICKS);
    uint32_t w2[6] = {0, 0, 0, 0, 100, 0};
    assert_shares(counts, w2, 6, PICKS);
    pick_snap_free(s);
    /* No healthy backend: failed connections are picked rather than none,
     * but still never draining or zero-weight ones; ejected ones last. */
    v[4]->conn = GRPC_CHANNEL_TRANSIENT_FAILURE;
    assert_int_equal(pick_snap_build(v, 6, &no_zone, &s), LOOKASIDE_OK);
    assert_true(s->degraded);
    count_picks(s, v, 6, counts, PICKS);
    uint32_t w3[6] = {0, 0, 0, 100, 100, 100};
    assert_shares(counts, w3, 6, PICKS);
    pick_snap_free(s);
    la_backend *only_ejected[] = {v[0], v[1], v[2]};
    assert_int_equal(pick_snap_build(only_ejected, 3, &no_zone, &s), LOOKASIDE_OK);
    count_picks(s, v, 6, counts, 1000);
    assert_int_equal(counts[2], 1000);
    pick_snap_free(s);
    /* Only draining and zero weight: nothing. */
    la_backend *none[] = {v[0], v[1]};
    assert_int_equal(pick_snap_build(none, 2, &no_zone, &s), LOOKASIDE_OK);
    assert_null(s);
    free_all(v, 6);
}

static void test_zone(void **st)
{
    (void)st;
    /* Two zones of three backends each. */
    la_backend *v[6];
    for (int i = 0; i < 6; i++)
        v[i] = mk(i, 100, i < 3 ? "a" : "b");
    pick_params pz = {"a", true, 50};
    size_t counts[6];
    pick_snap *s;
    assert_int_equal(pick_snap_build(v, 6, &pz, &s), LOOKASIDE_OK);
    assert_true(s->zone_local);
    count_picks(s, v, 6, counts, PICKS);
    uint32_t w[6] = {100, 100, 100, 0, 0, 0};
    assert_shares(counts, w, 6, PICKS);
    pick_snap_free(s);
    /* Two of three local backends fail: under 50 % healthy -> spread. */
    v[0]->conn = GRPC_CHANNEL_TRANSIENT_FAILURE;
    v[1]->ejected = true;
    assert_int_equal(pick_snap_build(v, 6, &pz, &s), LOOKASIDE_OK);
    assert_false(s->zone_local);
    count_picks(s, v, 6, counts, PICKS);
    uint32_t w2[6] = {0, 0, 100, 100, 100, 100};
    assert_shares(counts, w2, 6, PICKS);
    pick_snap_free(s);
    /* A small zone (1 of 7 backends: under half an even share) -> spread. */
    v[0]->conn = GRPC_CHANNEL_READY;
    v[1]->ejected = false;
    la_backend *small[] = {v[0], v[3], v[4], v[5]};
    v[3]->weight = v[4]->weight = v[5]->weight = 300;
    assert_int_equal(pick_snap_build(small, 4, &pz, &s), LOOKASIDE_OK);
    assert_false(s->zone_local); /* 100 * 2 zones < 50 % of 1000 */
    pick_snap_free(s);
    v[0]->weight = 300; /* 300 * 2 >= 50 % of 1200 */
    assert_int_equal(pick_snap_build(small, 4, &pz, &s), LOOKASIDE_OK);
    assert_true(s->zone_local);
    pick_snap_free(s);
    /* Affinity off or no client zone: spread. */
    pick_params off = {"a", false, 50};
    assert_int_equal(pick_snap_build(v, 6, &off, &s), LOOKASIDE_OK);
    assert_false(s->zone_local);
    pick_snap_free(s);
    pick_params unknown = {"zz", true, 50};
    assert_int_equal(pick_snap_build(v, 6, &unknown, &s), LOOKASIDE_OK);
    assert_false(s->zone_local);
    assert_int_equal(s->n, 6);
    pick_snap_free(s);
    free_all(v, 6);
}

static void fail_n(la_backend *b, uint32_t n)
{
    atomic_store(&b->consec_fail, n);
}

/* Ends k calls on b's first stripe, f of them failed, never two failures in
 * a row (so the consecutive rule never fires). */
static void calls_n(la_backend *b, uint64_t k, uint64_t f)
{
    atomic_fetch_add(&b->stripes[0].calls, k);
    atomic_fetch_add(&b->stripes[0].failures, f);
}

/* Failure percentage (gRFC A50): judged per window, on enough volume,
 * still under the cap. */
static void test_eject_failure_percentage(void **st)
{
    (void)st;
    enum { N = 10 };
    la_backend *v[N];
    for (int i = 0; i < N; i++)
        v[i] = mk(i, 100, NULL);
    eject_params p = {5, 30000, 300000, 10, 85, 20, 1000};
    int64_t next = INT64_MAX, now = 1000000;
    eject_window(v, N, &p); /* nothing counted yet */
    assert_false(eject_update(v, N, &p, now, &next));
    calls_n(v[0], 100, 90); /* 90 %: out */
    calls_n(v[1], 100, 50); /* 50 %: stays */
    calls_n(v[2], 10, 10);  /* 100 % of too few calls: stays */
    calls_n(v[3], 100, 99); /* over too, but the cap (1 of 10) is taken */
    eject_window(v, N, &p);
    assert_true(eject_update(v, N, &p, now, &next));
    assert_true(v[0]->ejected);
    assert_false(v[1]->ejected || v[2]->ejected || v[3]->ejected);
    /* The next window judges only the calls since: v[3] recovered. */
    calls_n(v[3], 100, 0);
    eject_window(v, N, &p);
    assert_false(eject_update(v, N, &p, now + 1000, &next));
    assert_false(v[3]->ejected);
    /* Off: no ejection whatever the rate. */
    p.fp_threshold = 0;
    calls_n(v[4], 100, 100);
    eject_window(v, N, &p);
    assert_false(eject_update(v, N, &p, now + 2000, &next));
    free_all(v, N);
}

static void test_eject(void **st)
{
    (void)st;
    enum { N = 20 };
    la_backend *v[N];
    for (int i = 0; i < N; i++)
        v[i] = mk(i, 100, NULL);
    eject_params p = {5, 30000, 300000, 10, 0, 0, 0};
    assert_int_equal(eject_cap(N, 10), 2);
    assert_int_equal(eject_cap(3, 10), 1);
    assert_int_equal(eject_cap(1, 10), 1);
    int64_t next = INT64_MAX, now = 1000000;
    /* Four below the threshold: nothing. */
    fail_n(v[0], 4);
    assert_false(eject_update(v, N, &p, now, &next));
    /* Three over: only the cap (2) is ejected. */
    fail_n(v[0], 5);
    fail_n(v[1], 9);
    fail_n(v[2], 5);
    assert_true(eject_update(v, N, &p, now, &next));
    assert_true(v[0]->ejected && v[1]->ejected);
    assert_false(v[2]->ejected);
    assert_int_equal(next, now + 30000);
    /* Ejected backends are never picked while others are healthy. */
    pick_snap *s;
    size_t counts[N];
    assert_int_equal(pick_snap_build(v, N, &no_zone, &s), LOOKASIDE_OK);
    count_picks(s, v, N, counts, PICKS);
    assert_int_equal(counts[0], 0);
    assert_int_equal(counts[1], 0);
    assert_true(counts[2] > 0);
    pick_snap_free(s);
    /* Before expiry nothing changes; at expiry both return with a clean
     * count and the waiting one is ejected. */
    next = INT64_MAX;
    assert_false(eject_update(v, N, &p, now + 29999, &next));
    next = INT64_MAX;
    assert_true(eject_update(v, N, &p, now + 30000, &next));
    assert_false(v[0]->ejected);
    assert_false(v[1]->ejected);
    assert_int_equal(atomic_load(&v[0]->consec_fail), 0);
    assert_true(v[2]->ejected);
    /* Ejected again: base x times ejected. */
    now += 40000;
    fail_n(v[0], 5);
    next = INT64_MAX;
    assert_true(eject_update(v, N, &p, now, &next));
    assert_true(v[0]->ejected);
    assert_int_equal(v[0]->times_ejected, 2);
    assert_int_equal(v[0]->eject_until_ms, now + 60000);
    /* Capped at max_ms. */
    v[0]->times_ejected = 100;
    v[0]->ejected = false;
    v[0]->eject_end_ms = now;
    fail_n(v[0], 5);
    next = INT64_MAX;
    eject_update(v, N, &p, now, &next);
    assert_int_equal(v[0]->eject_until_ms, now + 300000);
    /* A single backend may be ejected (cap >= 1); picks then still use it. */
    la_backend *one[] = {mk(30, 100, NULL)};
    fail_n(one[0], 5);
    next = INT64_MAX;
    assert_true(eject_update(one, 1, &p, now, &next));
    assert_true(one[0]->ejected);
    assert_int_equal(pick_snap_build(one, 1, &no_zone, &s), LOOKASIDE_OK);
    assert_true(s->degraded);
    pick_snap_free(s);
    free_all(one, 1);
    free_all(v, N);
}

static void test_table_len(void **st)
{
    (void)st;
    assert_int_equal(pick_table_len(1), 64);
    assert_int_equal(pick_table_len(10), 160);
    assert_int_equal(pick_table_len(1000), 4096);
    assert_int_equal(pick_table_len(5000), 5000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_distribution), cmocka_unit_test(test_add_remove),
        cmocka_unit_test(test_exclusions),   cmocka_unit_test(test_zone),
        cmocka_unit_test(test_down),         cmocka_unit_test(test_p2c),
        cmocka_unit_test(test_p2c_latency),         cmocka_unit_test(test_eject_failure_percentage),
        cmocka_unit_test(test_eject),        cmocka_unit_test(test_table_len),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
