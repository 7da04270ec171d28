/* Unit tests for common/wrr.c: counts, shares, spreading, bounds. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wrr.h"

/* Deterministic pseudo-random numbers (tests must not depend on libc rand). */
static uint64_t lcg_state;
static uint32_t lcg(void)
{
    lcg_state = lcg_state * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(lcg_state >> 33);
}

static size_t *counts_of(const uint32_t *seq, size_t len, size_t n)
{
    size_t *c = calloc(n ? n : 1, sizeof *c);
    assert_non_null(c);
    for (size_t i = 0; i < len; i++) {
        assert_true(seq[i] < n);
        c[seq[i]]++;
    }
    return c;
}

/* Longest run of one index reading the sequence as a cycle. */
static size_t max_cyclic_run(const uint32_t *seq, size_t len, uint32_t idx)
{
    size_t best = 0, run = 0;
    for (size_t k = 0; k < 2 * len; k++) {
        run = seq[k % len] == idx ? run + 1 : 0;
        if (run > best)
            best = run;
    }
    return best > len ? len : best;
}

static void build(const uint32_t *w, size_t n, size_t max_len, uint32_t **seq, size_t *len)
{
    assert_int_equal(wrr_sequence(w, n, max_len, seq, len), LOOKASIDE_OK);
    assert_true(*len <= max_len);
}

static void shares(void **st)
{
    (void)st;
    static const uint32_t v1[] = {1000, 2000, 500};
    static const uint32_t v2[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
    static const uint32_t v3[] = {1000, 1013, 987, 1100, 905, 1000, 1250, 760, 999, 1001};
    static const uint32_t v4[] = {1333, 667};              /* the 2:1 weights case */
    static const uint32_t v5[] = {100, 1000, 1000, 1000};  /* a ramping backend at 10% */
    static const uint32_t v6[] = {4294967295u, 4294967294u, 3000000000u};
    const struct { const uint32_t *w; size_t n; } v[] = {
        {v1, 3}, {v2, 10}, {v3, 10}, {v4, 2}, {v5, 4}, {v6, 3},
    };
    for (size_t k = 0; k < sizeof v / sizeof v[0]; k++) {
        uint32_t *seq;
        size_t len;
        build(v[k].w, v[k].n, 1000, &seq, &len);
        double e = wrr_share_error(v[k].w, v[k].n, seq, len);
        if (!(e < 0.01))
            fail_msg("vector %zu: share error %g over 1%% (len %zu)", k, e, len);
        free(seq);
    }
    /* Random vectors of realistic weights (what weights.c produces). An
     * entry is worth 1/len of the traffic, so apportioning can miss a share
     * by up to one entry: the bound is 1/(smallest quota), which is < 1% for
     * up to ~8 comparable backends in 1000 entries. */
    lcg_state = 42;
    for (int r = 0; r < 300; r++) {
        uint32_t w[40];
        size_t n = 1 + lcg() % 40;
        double tot = 0, wmin = 1e9;
        for (size_t i = 0; i < n; i++) {
            w[i] = 500 + lcg() % 1500;
            tot += w[i];
            wmin = w[i] < wmin ? w[i] : wmin;
        }
        uint32_t *seq;
        size_t len;
        build(w, n, 1000, &seq, &len);
        double e = wrr_share_error(w, n, seq, len);
        double bound = tot / wmin / 1000.0;
        if (!(e < bound))
            fail_msg("random %d (n %zu): share error %g over %g", r, n, e, bound);
        if (n <= 6 && !(e < 0.01))
            fail_msg("random %d (n %zu): share error %g over 1%%", r, n, e);
        free(seq);
    }
}

static void exact_counts(void **st)
{
    (void)st;
    /* gcd reduction: 1000/2000/500 is 2:4:1, length 7. */
    static const uint32_t w[] = {1000, 2000, 500};
    uint32_t *seq;
    size_t len;
    build(w, 3, 1000, &seq, &len);
    assert_int_equal(len, 7);
    size_t *c = counts_of(seq, len, 3);
    assert_int_equal(c[0], 2);
    assert_int_equal(c[1], 4);
    assert_int_equal(c[2], 1);
    free(c);
    free(seq);

    /* Equal weights: length n, each once, in index order. */
    static const uint32_t eq[] = {1000, 1000, 1000, 1000, 1000};
    build(eq, 5, 1000, &seq, &len);
    assert_int_equal(len, 5);
    for (size_t i = 0; i < 5; i++)
        assert_int_equal(seq[i], i);
    free(seq);

    /* 1..10 fits exactly: 55 entries, i+1 times each. */
    uint32_t w10[10];
    for (uint32_t i = 0; i < 10; i++)
        w10[i] = i + 1;
    build(w10, 10, 1000, &seq, &len);
    assert_int_equal(len, 55);
    c = counts_of(seq, len, 10);
    for (size_t i = 0; i < 10; i++)
        assert_int_equal(c[i], i + 1);
    assert_true(wrr_share_error(w10, 10, seq, len) == 0.0);
    free(c);
    free(seq);

    /* Small random vectors that fit: every count exact. */
    lcg_state = 7;
    for (int r = 0; r < 500; r++) {
        uint32_t wr[8];
        size_t n = 1 + lcg() % 8;
        uint64_t g = 0, tot = 0;
        for (size_t i = 0; i < n; i++) {
            wr[i] = lcg() % 4 == 0 ? 0 : 1 + lcg() % 60;
            tot += wr[i];
        }
        build(wr, n, 1000, &seq, &len);
        if (tot == 0) {
            assert_null(seq);
            continue;
        }
        for (size_t i = 0; i < n; i++) {
            uint64_t a = g, b = wr[i];
            while (b) {
                uint64_t t = a % b;
                a = b;
                b = t;
            }
            g = a;
        }
        assert_int_equal(len, tot / g);
        c = counts_of(seq, len, n);
        for (size_t i = 0; i < n; i++)
            assert_int_equal(c[i], wr[i] / g);
        free(c);
        free(seq);
    }
}

static void apportioned(void **st)
{
    (void)st;
    /* Needs scaling: every count is floor or ceil of its quota, the total is
     * max_len, tiny weights keep one entry. */
    lcg_state = 99;
    for (int r = 0; r < 300; r++) {
        uint32_t w[40];
        size_t n = 2 + lcg() % 39;
        size_t max_len = n + lcg() % 300;
        double tot = 0;
        for (size_t i = 0; i < n; i++) {
            w[i] = 1 + lcg() % 100000;
            tot += w[i];
        }
        uint32_t *seq;
        size_t len;
        build(w, n, max_len, &seq, &len);
        size_t *c = counts_of(seq, len, n);
        for (size_t i = 0; i < n; i++) {
            assert_true(c[i] >= 1);
            /* cg undoes the final gcd reduction. Forced single entries for
             * tiny weights only take seats from the others, so nobody ends
             * more than one entry above max(1, quota). */
            double q = w[i] / tot * (double)max_len;
            double cg = (double)c[i] * (double)max_len / (double)len;
            if (!(cg <= (q < 1 ? 1 : q) + 1.0 + 1e-9))
                fail_msg("r %d: index %zu count %zu (x%g) over quota %g", r, i, c[i],
                         (double)max_len / (double)len, q);
        }
        free(c);
        free(seq);
    }

    /* One huge, one tiny: the tiny one keeps exactly one entry. */
    static const uint32_t w2[] = {1, 1000000};
    uint32_t *seq;
    size_t len;
    build(w2, 2, 10, &seq, &len);
    assert_int_equal(len, 10);
    size_t *c = counts_of(seq, len, 2);
    assert_int_equal(c[0], 1);
    assert_int_equal(c[1], 9);
    free(c);
    free(seq);

    /* Apportioned counts reduced again: 3 x ~equal over 1000 -> 333/334/333
     * has gcd 1; 2000/2001/1999 over max_len 3 -> 1/1/1 -> length 3. */
    static const uint32_t w3[] = {2000, 2001, 1999};
    build(w3, 3, 3, &seq, &len);
    assert_int_equal(len, 3);
    free(seq);
}

static void spreading(void **st)
{
    (void)st;
    /* Comparable weights (none above twice another), three or more: never
     * the same index twice in a row, across the wrap included. */
    lcg_state = 5;
    for (int r = 0; r < 500; r++) {
        uint32_t w[12];
        size_t n = 3 + lcg() % 10;
        for (size_t i = 0; i < n; i++)
            w[i] = 1000 + lcg() % 1001;
        uint32_t *seq;
        size_t len;
        build(w, n, r % 2 ? 1000 : 100000, &seq, &len);
        for (size_t k = 0; k < len; k++)
            if (seq[k] == seq[(k + len - 1) % len])
                fail_msg("r %d (n %zu, len %zu): index %u twice in a row at %zu", r, n, len,
                         seq[k], k);
        free(seq);
    }
    /* The case plain nginx gets wrong. */
    static const uint32_t near[] = {110, 100, 102, 122};
    uint32_t *seq;
    size_t len;
    build(near, 4, 1000, &seq, &len);
    assert_int_equal(len, 217); /* gcd 2 */
    for (size_t k = 0; k < len; k++)
        assert_int_not_equal(seq[k], seq[(k + len - 1) % len]);
    free(seq);
    /* Two equal: strict alternation. */
    static const uint32_t two[] = {1000, 1000};
    build(two, 2, 1000, &seq, &len);
    assert_int_equal(len, 2);
    assert_int_not_equal(seq[0], seq[1]);
    free(seq);

    /* Evenness: at every point of two passes round the cycle, each index
     * has had within 1.5 entries of its ideal count. */
    lcg_state = 11;
    for (int r = 0; r < 300; r++) {
        uint32_t w[10];
        size_t n = 1 + lcg() % 10;
        for (size_t i = 0; i < n; i++)
            w[i] = lcg() % 3 ? 1 + lcg() % 60 : 1 + lcg() % 4;
        build(w, n, 1000, &seq, &len);
        size_t *total = counts_of(seq, len, n);
        size_t seen[10] = {0};
        for (size_t t = 0; t < 2 * len; t++) {
            seen[seq[t % len]]++;
            for (size_t i = 0; i < n; i++) {
                double ideal = (double)(t + 1) * (double)total[i] / (double)len;
                if (!(fabs((double)seen[i] - ideal) < 1.5))
                    fail_msg("r %d: index %zu has %zu after %zu, ideal %g", r, i, seen[i],
                             t + 1, ideal);
            }
        }
        free(total);
        free(seq);
    }

    /* 3:2 -> a b a b a (the wrap repeat is unavoidable). */
    static const uint32_t w32[] = {3, 2};
    build(w32, 2, 100, &seq, &len);
    static const uint32_t want32[] = {0, 1, 0, 1, 0};
    assert_int_equal(len, 5);
    assert_memory_equal(seq, want32, sizeof want32);
    free(seq);

    /* One heavy and several light with equal weights: the light ones are
     * spaced evenly, so the heavy one's longest run (cyclic) stays at the
     * ideal ceil(50/3) = 17 instead of ~48. */
    static const uint32_t heavy[] = {50, 1, 1, 1};
    build(heavy, 4, 1000, &seq, &len);
    assert_int_equal(len, 53);
    assert_true(max_cyclic_run(seq, len, 0) <= 17);
    free(seq);

    /* Slow start: nine backends at 1000 and one at 100. The light one's
     * single entry per cycle and no heavy index runs twice. */
    static const uint32_t ramp[] = {1000, 1000, 1000, 1000, 100, 1000, 1000, 1000, 1000, 1000};
    build(ramp, 10, 1000, &seq, &len);
    assert_int_equal(len, 91);
    for (uint32_t i = 0; i < 10; i++)
        assert_true(max_cyclic_run(seq, len, i) == 1);
    free(seq);

    /* Heavy vs light, nginx's own example 5:1:1: heavy runs of at most 3. */
    static const uint32_t ng[] = {5, 1, 1};
    build(ng, 3, 100, &seq, &len);
    assert_int_equal(len, 7);
    assert_true(max_cyclic_run(seq, len, 0) <= 3);
    free(seq);
}

static void zero_weights(void **st)
{
    (void)st;
    static const uint32_t w[] = {0, 5, 0, 5, 0};
    uint32_t *seq;
    size_t len;
    build(w, 5, 10, &seq, &len);
    assert_int_equal(len, 2);
    assert_int_equal(seq[0], 1);
    assert_int_equal(seq[1], 3);
    free(seq);

    static const uint32_t z[] = {0, 0, 0};
    seq = (uint32_t *)1;
    len = 99;
    assert_int_equal(wrr_sequence(z, 3, 10, &seq, &len), LOOKASIDE_OK);
    assert_null(seq);
    assert_int_equal(len, 0);
    assert_int_equal(wrr_sequence(NULL, 0, 10, &seq, &len), LOOKASIDE_OK);
    assert_null(seq);
    assert_int_equal(len, 0);

    /* Zero entries do not need room: 3 nonzero of 1000 fit in max_len 3. */
    uint32_t many[1000];
    memset(many, 0, sizeof many);
    many[10] = 7;
    many[500] = 7;
    many[999] = 14;
    build(many, 1000, 3, &seq, &len);
    assert_int_equal(len, 3);
    size_t *c = counts_of(seq, len, 1000);
    assert_int_equal(c[10], 1);
    assert_int_equal(c[500], 1);
    assert_int_equal(c[999], 1);
    free(c);
    free(seq);
}

static void single_backend(void **st)
{
    (void)st;
    static const uint32_t w[] = {123456};
    uint32_t *seq;
    size_t len;
    build(w, 1, 1000, &seq, &len);
    assert_int_equal(len, 1);
    assert_int_equal(seq[0], 0);
    assert_true(wrr_share_error(w, 1, seq, len) == 0.0);
    free(seq);
    build(w, 1, 1, &seq, &len);
    assert_int_equal(len, 1);
    free(seq);
}

static void determinism(void **st)
{
    (void)st;
    lcg_state = 1234;
    for (int r = 0; r < 50; r++) {
        uint32_t w[64];
        size_t n = 1 + lcg() % 64;
        for (size_t i = 0; i < n; i++)
            w[i] = lcg() % 5000;
        uint32_t *a, *b;
        size_t la, lb;
        assert_int_equal(wrr_sequence(w, n, 777, &a, &la), LOOKASIDE_OK);
        assert_int_equal(wrr_sequence(w, n, 777, &b, &lb), LOOKASIDE_OK);
        assert_int_equal(la, lb);
        if (la)
            assert_memory_equal(a, b, la * sizeof *a);
        free(a);
        free(b);
    }
}

static void bounds(void **st)
{
    (void)st;
    static const uint32_t w[] = {1, 2, 3};
    uint32_t *seq = (uint32_t *)1;
    size_t len = 5;
    assert_int_equal(wrr_sequence(w, 3, 0, &seq, &len), LOOKASIDE_EINVAL);
    assert_null(seq);
    assert_int_equal(len, 0);
    assert_int_equal(wrr_sequence(w, 3, 2, &seq, &len), LOOKASIDE_EINVAL); /* 3 nonzero > 2 */
    assert_null(seq);
    assert_int_equal(wrr_sequence(NULL, 3, 10, &seq, &len), LOOKASIDE_EINVAL);
    assert_int_equal(wrr_sequence(w, 3, 10, NULL, &len), LOOKASIDE_EINVAL);
    assert_int_equal(wrr_sequence(w, 3, 10, &seq, NULL), LOOKASIDE_EINVAL);

    /* max_len == number of nonzero: each exactly once. */
    build(w, 3, 3, &seq, &len);
    assert_int_equal(len, 3);
    free(seq);
    /* Every max_len from the minimum up: length never above it, shares
     * improve as room grows and are exact once the 6 entries fit. */
    for (size_t m = 3; m <= 20; m++) {
        build(w, 3, m, &seq, &len);
        assert_true(len <= m);
        if (m >= 6) {
            assert_int_equal(len, 6);
            assert_true(wrr_share_error(w, 3, seq, len) == 0.0);
        }
        free(seq);
    }
    /* A max_len beyond 32 bits is accepted (treated as UINT32_MAX). */
    build(w, 3, SIZE_MAX, &seq, &len);
    assert_int_equal(len, 6);
    free(seq);
    /* Extreme weights do not overflow the apportioning arithmetic. */
    static const uint32_t big[] = {UINT32_MAX, UINT32_MAX - 1, 1, UINT32_MAX};
    build(big, 4, 1000, &seq, &len);
    assert_true(len <= 1000 && len >= 4);
    size_t *c = counts_of(seq, len, 4);
    assert_int_equal(c[2], 1);
    free(c);
    free(seq);
}

static void big_n(void **st)
{
    (void)st;
    /* 20000 equal backends: one entry each, in order. */
    size_t n = 20000;
    uint32_t *w = malloc(n * sizeof *w);
    assert_non_null(w);
    for (size_t i = 0; i < n; i++)
        w[i] = 1000;
    uint32_t *seq;
    size_t len;
    build(w, n, 65536, &seq, &len);
    assert_int_equal(len, n);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(seq[i], i);
    free(seq);

    /* 10000 realistic weights over 1e6 entries: shares within 1%. */
    n = 10000;
    lcg_state = 77;
    for (size_t i = 0; i < n; i++)
        w[i] = 800 + lcg() % 400;
    build(w, n, 1000000, &seq, &len);
    double e = wrr_share_error(w, n, seq, len);
    if (!(e < 0.01))
        fail_msg("share error %g", e);
    free(seq);

    /* 20000 random weights in 20000 entries: everyone present once at least. */
    n = 20000;
    for (size_t i = 0; i < n; i++)
        w[i] = 1 + lcg() % 100000;
    build(w, n, 20000, &seq, &len);
    assert_int_equal(len, 20000);
    size_t *c = counts_of(seq, len, n);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(c[i], 1);
    free(c);
    free(seq);
    free(w);
}

static void share_error_fn(void **st)
{
    (void)st;
    static const uint32_t w[] = {1, 0, 3};
    static const uint32_t good[] = {2, 0, 2, 2};
    static const uint32_t off[] = {2, 0, 2, 0};
    static const uint32_t out_of_range[] = {2, 0, 3};
    static const uint32_t zero_idx[] = {2, 1, 2};
    assert_true(wrr_share_error(w, 3, good, 4) == 0.0);
    /* index 0: share 0.5 vs 0.25 -> error 1.0 */
    assert_true(fabs(wrr_share_error(w, 3, off, 4) - 1.0) < 1e-12);
    assert_true(isinf(wrr_share_error(w, 3, out_of_range, 3)));
    assert_true(isinf(wrr_share_error(w, 3, zero_idx, 3)));
    assert_true(isinf(wrr_share_error(w, 3, NULL, 0)));
    static const uint32_t z[] = {0, 0};
    assert_true(wrr_share_error(z, 2, NULL, 0) == 0.0);
    assert_true(isinf(wrr_share_error(z, 2, good + 1, 1)));
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(shares),       cmocka_unit_test(exact_counts),
        cmocka_unit_test(apportioned),  cmocka_unit_test(spreading),
        cmocka_unit_test(zero_weights), cmocka_unit_test(single_backend),
        cmocka_unit_test(determinism),  cmocka_unit_test(bounds),
        cmocka_unit_test(big_n),        cmocka_unit_test(share_error_fn),
    };
    if (argc > 1) {
        /* One test by name (ctest registers each); an unknown name fails
         * rather than silently running nothing. */
        bool found = false;
        for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++)
            found |= strcmp(tests[i].name, argv[1]) == 0;
        if (!found) {
            fprintf(stderr, "no test named %s\n", argv[1]);
            return 2;
        }
        cmocka_set_test_filter(argv[1]);
    }
    return cmocka_run_group_tests_name("wrr", tests, NULL, NULL);
}
