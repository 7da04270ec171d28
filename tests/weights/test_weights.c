/* Unit tests for server/weights.c: the A58 math on hand-computed cases,
 * every step of the pipeline, garbage inputs, and the policy table. */
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

#include "weights.h"

#define NOW ((int64_t)1000000) /* monotonic ms; any value > the ramps used */

static const struct weights_policy_ops *a58 = &weights_policy_a58;

static void rep(weights_backend *b, double rps, double util, double eps)
{
    b->in.has_report = true;
    b->in.rps = rps;
    b->in.cpu = util;
    b->in.app = 0;
    b->in.eps = eps;
    b->in.report_ms = NOW;
}

static weights_config cfg_default(void)
{
    weights_config c;
    weights_config_default(&c);
    return c;
}

static void assert_text(const weights_backend *b, const char *needle)
{
    if (!strstr(b->why.text, needle))
        fail_msg("explanation \"%s\" lacks \"%s\"", b->why.text, needle);
}

static void assert_near(double got, double want, double tol)
{
    if (!(fabs(got - want) <= tol))
        fail_msg("got %.9g, want %.9g (+-%g)", got, want, tol);
}

/* Every serving weight in [1, MAX], draining 0, text one non-empty line,
 * no NaN anywhere in the explanation. */
static void assert_sane(const weights_backend *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (b[i].in.draining)
            assert_int_equal(b[i].weight, 0);
        else
            assert_true(b[i].weight >= 1 && b[i].weight <= WEIGHTS_MAX);
        size_t tl = strnlen(b[i].why.text, sizeof b[i].why.text);
        assert_true(tl > 0 && tl < sizeof b[i].why.text);
        assert_null(strchr(b[i].why.text, '\n'));
        const double f[] = {b[i].why.util,    b[i].why.rps,      b[i].why.eps,
                            b[i].why.raw,     b[i].why.mean,     b[i].why.clamped,
                            b[i].why.alpha,   b[i].why.smoothed, b[i].why.slow_start};
        for (size_t k = 0; k < sizeof f / sizeof f[0]; k++)
            if (!isfinite(f[k]))
                fail_msg("backend %zu: explain field %zu is %g (%s)", i, k, f[k], b[i].why.text);
        assert_true(isfinite(b[i].st.smoothed));
    }
}

/* --- the formula ---------------------------------------------------------- */

static void two_to_one(void **st)
{
    (void)st;
    /* rps 100 at util 0.5 vs util 1.0: raw 200 and 100, mean 150, so 4/3
     * and 2/3 of the mean. */
    weights_backend b[2];
    memset(b, 0, sizeof b);
    rep(&b[0], 100, 0.5, 0);
    rep(&b[1], 100, 1.0, 0);
    weights_config c = cfg_default();
    a58->compute(&c, b, 2, NOW);
    assert_int_equal(b[0].weight, 1333);
    assert_int_equal(b[1].weight, 667);
    assert_near(b[0].why.raw, 200, 1e-9);
    assert_near(b[1].why.raw, 100, 1e-9);
    assert_near(b[0].why.mean, 150, 1e-9);
    assert_near(b[0].why.clamped, 200, 1e-9);
    assert_near(b[0].why.smoothed, 4.0 / 3, 1e-12);
    assert_true(b[0].why.usable);
    assert_true(b[0].why.slow_start == 1.0);
    assert_text(&b[0], "rps=100 util=0.5(cpu)");
    assert_text(&b[0], "raw=rps/(util+eps/rps*1)=200");
    assert_text(&b[0], "primes smoothing");
    assert_text(&b[0], "-> 1333");
    assert_sane(b, 2);
}

static void formula_errors_app(void **st)
{
    (void)st;
    /* app wins over cpu when > 0: util 0.5, eps/rps = 0.1 -> raw 100/0.6.
     * The other: app 0 so cpu 0.5, no errors -> raw 200. */
    weights_backend b[2];
    memset(b, 0, sizeof b);
    rep(&b[0], 100, 0.9, 10);
    b[0].in.app = 0.5;
    rep(&b[1], 100, 0.5, 0);
    weights_config c = cfg_default();
    a58->compute(&c, b, 2, NOW);
    double r0 = 100 / 0.6, r1 = 200, mean = (r0 + r1) / 2;
    assert_near(b[0].why.util, 0.5, 0);
    assert_near(b[0].why.raw, r0, 1e-9);
    assert_near(b[1].why.util, 0.5, 0);
    assert_int_equal(b[0].weight, (uint32_t)lround(r0 / mean * 1000)); /* 909 */
    assert_int_equal(b[1].weight, (uint32_t)lround(r1 / mean * 1000)); /* 1091 */
    assert_text(&b[0], "(app)");
    assert_text(&b[1], "(cpu)");

    /* error_penalty 2 doubles the error term: 100 / (0.5 + 0.2). */
    memset(b, 0, sizeof b);
    rep(&b[0], 100, 0.9, 10);
    b[0].in.app = 0.5;
    rep(&b[1], 100, 0.5, 0);
    c.error_penalty = 2;
    a58->compute(&c, b, 2, NOW);
    assert_near(b[0].why.raw, 100 / 0.7, 1e-9);
    /* Penalty 0 ignores errors entirely: both raw 200, equal weights. */
    memset(b, 0, sizeof b);
    rep(&b[0], 100, 0.5, 50);
    rep(&b[1], 100, 0.5, 0);
    c.error_penalty = 0;
    a58->compute(&c, b, 2, NOW);
    assert_int_equal(b[0].weight, 1000);
    assert_int_equal(b[1].weight, 1000);
}

static void mean_substitution(void **st)
{
    (void)st;
    /* The backend without a report gets the mean: exactly 1000, the others
     * keep their 2:1. */
    weights_backend b[3];
    memset(b, 0, sizeof b);
    rep(&b[0], 100, 0.5, 0);
    rep(&b[1], 100, 1.0, 0);
    a58->compute(NULL, b, 3, NOW);
    assert_int_equal(b[0].weight, 1333);
    assert_int_equal(b[1].weight, 667);
    assert_int_equal(b[2].weight, 1000);
    assert_false(b[2].why.usable);
    assert_text(&b[2], "no report yet");
    assert_text(&b[2], "mean weight of 2 usable");
    assert_sane(b, 3);

    /* Nobody usable: all equal. */
    memset(b, 0, sizeof b);
    b[1].in.has_report = true; /* rps 0: unusable */
    b[1].in.report_ms = NOW;
    a58->compute(NULL, b, 3, NOW);
    for (int i = 0; i < 3; i++)
        assert_int_equal(b[i].weight, 1000);
    assert_text(&b[0], "none of 3 serving usable");
    assert_text(&b[1], "rps=0");
    assert_sane(b, 3);

    /* A single usable backend is the mean itself. */
    memset(b, 0, sizeof b);
    rep(&b[0], 5, 0.01, 0);
    a58->compute(NULL, b, 1, NOW);
    assert_int_equal(b[0].weight, 1000);
}

static void clamp_band(void **st)
{
    (void)st;
    /* Ten backends at raw 1000 and one at raw 1: mean 10001/11; the low one
     * is lifted to 0.1 x mean. */
    weights_backend b[11];
    memset(b, 0, sizeof b);
    for (int i = 0; i < 10; i++)
        rep(&b[i], 1000, 1, 0);
    rep(&b[10], 1, 1, 0);
    a58->compute(NULL, b, 11, NOW);
    double mean = 10001.0 / 11;
    assert_near(b[10].why.mean, mean, 1e-9);
    assert_near(b[10].why.raw, 1, 1e-12);
    assert_near(b[10].why.clamped, 0.1 * mean, 1e-9);
    assert_text(&b[10], "clamped to");
    /* Relative: small is 0.1, big 1000/mean; weights keep that ratio. */
    double rs = 0.1, rb = 1000 / mean, m = (10 * rb + rs) / 11;
    assert_int_equal(b[10].weight, (uint32_t)lround(rs / m * 1000));
    assert_int_equal(b[0].weight, (uint32_t)lround(rb / m * 1000));
    assert_sane(b, 11);

    /* Upper clamp at 2x: raws 100, 100, 1000 -> mean 400, 1000 cut to
     * 800; relative 0.25, 0.25, 2 with mean 5/6 -> 300, 300, 2400. */
    weights_config c = cfg_default();
    c.clamp_high = 2;
    memset(b, 0, sizeof b);
    rep(&b[0], 100, 1, 0);
    rep(&b[1], 100, 1, 0);
    rep(&b[2], 1000, 1, 0);
    a58->compute(&c, b, 3, NOW);
    assert_near(b[2].why.clamped, 800, 1e-9);
    assert_int_equal(b[0].weight, 300);
    assert_int_equal(b[1].weight, 300);
    assert_int_equal(b[2].weight, 2400);
}

/* --- smoothing ------------------------------------------------------------- */

static void smoothing(void **st)
{
    (void)st;
    weights_config c = cfg_default();
    c.smoothing = 1000; /* half-life 1 s */
    weights_backend b[2];
    memset(b, 0, sizeof b);
    rep(&b[0], 100, 0.5, 0);
    rep(&b[1], 100, 1.0, 0);
    a58->compute(&c, b, 2, NOW); /* primes at 4/3 and 2/3 */
    assert_int_equal(b[0].weight, 1333);
    assert_true(b[0].st.primed);

    /* The load evens out. One half-life later, half-way: 7/6 and 5/6. */
    rep(&b[0], 100, 1.0, 0);
    b[0].in.report_ms = b[1].in.report_ms = NOW + 1000;
    a58->compute(&c, b, 2, NOW + 1000);
    assert_near(b[0].why.alpha, 0.5, 1e-12);
    assert_near(b[0].st.smoothed, 7.0 / 6, 1e-12);
    assert_int_equal(b[0].weight, 1167);
    assert_int_equal(b[1].weight, 833);
    assert_text(&b[0], "smoothed 1.167 (a=0.5, half-life 1000ms)");

    /* Same instant again: no time passed, nothing moves. */
    a58->compute(&c, b, 2, NOW + 1000);
    assert_true(b[0].why.alpha == 0);
    assert_int_equal(b[0].weight, 1167);

    /* Time-consistent: two 500 ms steps equal one 1000 ms step. */
    weights_backend twin[2];
    memcpy(twin, b, sizeof b);
    a58->compute(&c, b, 2, NOW + 1500);
    a58->compute(&c, b, 2, NOW + 2000);
    a58->compute(&c, twin, 2, NOW + 2000);
    assert_near(b[0].st.smoothed, twin[0].st.smoothed, 1e-12);
    assert_near(b[0].st.smoothed, 1 + 1.0 / 12, 1e-12);

    /* Converges: after 12 more half-lives within 1 of 1000. */
    for (int s = 3; s <= 14; s++) {
        b[0].in.report_ms = b[1].in.report_ms = NOW + s * 1000; /* fresh reports */
        a58->compute(&c, b, 2, NOW + s * 1000);
        assert_true(b[0].why.usable && b[1].why.usable);
    }
    assert_true(abs((int)b[0].weight - 1000) <= 1);
    assert_true(abs((int)b[1].weight - 1000) <= 1);

    /* Smoothing 0: immediate. */
    c.smoothing = 0;
    rep(&b[0], 100, 0.5, 0);
    b[0].in.report_ms = b[1].in.report_ms = NOW + 14000;
    a58->compute(&c, b, 2, NOW + 14000);
    assert_int_equal(b[0].weight, 1333);
    assert_text(&b[0], "unsmoothed");

    /* Garbage state from the caller is ignored: re-primed. */
    c = cfg_default();
    b[0].st.smoothed = NAN;
    b[1].st.smoothed = -5;
    a58->compute(&c, b, 2, NOW + 14000);
    assert_int_equal(b[0].weight, 1333);
    assert_int_equal(b[1].weight, 667);
    assert_sane(b, 2);
}

/* --- slow start, drain, override, expiry ---------------------------------- */

static void slow_start(void **st)
{
    (void)st;
    weights_config c = cfg_default(); /* 10 s from 10%, linear */
    weights_backend b[2];
    memset(b, 0, sizeof b);
    b[1].in.ramp_start_ms = NOW;
    /* Traffic from the first instant: 10% of the mean. */
    a58->compute(&c, b, 2, NOW);
    assert_int_equal(b[0].weight, 1000);
    assert_int_equal(b[1].weight, 100);
    assert_near(b[1].why.slow_start, 0.1, 1e-12);
    assert_text(&b[1], "slow start x0.1 (0/10000ms)");
    /* Within the first second still the floor (linear 5% < 10%). */
    a58->compute(&c, b, 2, NOW + 500);
    assert_int_equal(b[1].weight, 100);
    /* Half-way: half. */
    a58->compute(&c, b, 2, NOW + 5000);
    assert_int_equal(b[1].weight, 500);
    assert_int_equal(b[0].weight, 1000); /* the others do not move */
    /* Monotonic ramp. */
    uint32_t prev = 0;
    for (int64_t t = 0; t <= 12000; t += 250) {
        a58->compute(&c, b, 2, NOW + t);
        assert_true(b[1].weight >= prev);
        prev = b[1].weight;
    }
    /* Done: full weight, no slow-start step in the text. */
    a58->compute(&c, b, 2, NOW + 10000);
    assert_int_equal(b[1].weight, 1000);
    assert_null(strstr(b[1].why.text, "slow start"));
    assert_true(b[1].why.slow_start == 1.0);
    /* A ramp start in the future (clock confusion) gives the floor. */
    a58->compute(&c, b, 2, NOW - 100);
    assert_int_equal(b[1].weight, 100);
    /* Envoy-style aggression 2: sqrt(0.25) = 0.5 at a quarter. */
    c.slow_start_aggression = 2;
    a58->compute(&c, b, 2, NOW + 2500);
    assert_int_equal(b[1].weight, 500);
    /* Slow start multiplies the computed weight, reports included. */
    c = cfg_default();
    rep(&b[0], 100, 1.0, 0);
    rep(&b[1], 100, 0.5, 0);
    memset(&b[0].st, 0, sizeof b[0].st);
    memset(&b[1].st, 0, sizeof b[1].st);
    b[0].in.report_ms = b[1].in.report_ms = NOW + 5000;
    a58->compute(&c, b, 2, NOW + 5000);
    assert_int_equal(b[0].weight, 667);
    assert_int_equal(b[1].weight, 667); /* 1333 x 0.5 */
    /* slow_start_ms 0 disables ramps. */
    c.slow_start_ms = 0;
    a58->compute(&c, b, 2, NOW + 5000);
    assert_int_equal(b[1].weight, 1333);
    assert_sane(b, 2);
}

static void drain(void **st)
{
    (void)st;
    /* A draining backend gets 0 and takes no part in the mean: the others
     * are as if it were absent. */
    weights_backend b[3];
    memset(b, 0, sizeof b);
    rep(&b[0], 100000, 0.1, 0);
    b[0].in.draining = true;
    b[0].in.override_weight = 5000;
    b[0].st.smoothed = 3;
    b[0].st.primed = true;
    rep(&b[1], 100, 0.5, 0);
    rep(&b[2], 100, 1.0, 0);
    a58->compute(NULL, b, 3, NOW);
    assert_int_equal(b[0].weight, 0);
    assert_int_equal(b[1].weight, 1333);
    assert_int_equal(b[2].weight, 667);
    assert_text(&b[0], "draining -> 0");
    assert_text(&b[0], "override ignored");
    assert_true(b[0].st.smoothed == 3); /* kept for an undrain */
    assert_sane(b, 3);
    /* All draining: all 0. */
    for (int i = 0; i < 3; i++)
        b[i].in.draining = true;
    a58->compute(NULL, b, 3, NOW);
    for (int i = 0; i < 3; i++)
        assert_int_equal(b[i].weight, 0);
    assert_false(weights_significant(NULL, (uint32_t[]){0, 0, 0}, (uint32_t[]){0, 0, 0}, 3));
}

static void override(void **st)
{
    (void)st;
    weights_backend b[2];
    memset(b, 0, sizeof b);
    rep(&b[0], 100, 0.5, 0);
    rep(&b[1], 100, 1.0, 0);
    b[0].in.override_weight = 5000;
    b[0].in.ramp_start_ms = NOW; /* override beats slow start too */
    a58->compute(NULL, b, 2, NOW);
    assert_int_equal(b[0].weight, 5000);
    assert_int_equal(b[1].weight, 667); /* computation unchanged */
    assert_text(&b[0], "override -> 5000");
    assert_near(b[0].why.raw, 200, 1e-9); /* the computed path stays visible */
    /* Capped at WEIGHTS_MAX. */
    b[0].in.override_weight = UINT32_MAX;
    a58->compute(NULL, b, 2, NOW);
    assert_int_equal(b[0].weight, WEIGHTS_MAX);
    /* Override 1 is the smallest weight a serving backend can be given. */
    b[0].in.override_weight = 1;
    a58->compute(NULL, b, 2, NOW);
    assert_int_equal(b[0].weight, 1);
    assert_sane(b, 2);
}

static void expiry(void **st)
{
    (void)st;
    weights_config c = cfg_default();
    weights_backend b[3];
    memset(b, 0, sizeof b);
    rep(&b[0], 100, 0.5, 0);
    rep(&b[1], 100, 1.0, 0);
    rep(&b[2], 1, 1.0, 0);
    b[2].in.report_ms = NOW - c.expire_ms - 1; /* stale: mean */
    b[1].in.report_ms = NOW - c.expire_ms;     /* exactly at the limit: still good */
    a58->compute(&c, b, 3, NOW);
    assert_int_equal(b[0].weight, 1333);
    assert_int_equal(b[1].weight, 667);
    assert_int_equal(b[2].weight, 1000);
    assert_text(&b[2], "report stale (10001ms > 10000ms)");
    /* A shorter expiry turns the second one stale too. */
    c.expire_ms = 5000;
    a58->compute(&c, b, 3, NOW);
    assert_int_equal(b[1].weight, 1000);
    assert_int_equal(b[0].weight, 1000); /* the only usable one is the mean */
    assert_sane(b, 3);
}

/* --- garbage in ------------------------------------------------------------ */

static void bad_inputs(void **st)
{
    (void)st;
    const double bad[] = {NAN, INFINITY, -INFINITY, -1, -1e-300, 1e300, 1e13};
    for (size_t f = 0; f < 4; f++) {
        for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
            weights_backend b[3];
            memset(b, 0, sizeof b);
            rep(&b[0], 100, 0.5, 0);
            rep(&b[1], 100, 1.0, 0);
            rep(&b[2], 100, 0.7, 1);
            b[2].in.app = 0.7;
            double *field[] = {&b[2].in.cpu, &b[2].in.app, &b[2].in.rps, &b[2].in.eps};
            *field[f] = bad[k];
            a58->compute(NULL, b, 3, NOW);
            assert_sane(b, 3);
            if (b[2].weight != 1000 || b[0].weight != 1333 || b[1].weight != 667)
                fail_msg("field %zu value %g: weights %u %u %u (%s)", f, bad[k], b[0].weight,
                         b[1].weight, b[2].weight, b[2].why.text);
            assert_false(b[2].why.usable);
        }
    }
    /* Zeros: rps 0, or both utilisations 0. */
    weights_backend b[2];
    memset(b, 0, sizeof b);
    rep(&b[0], 100, 0, 0);
    rep(&b[1], 0, 0.5, 0);
    a58->compute(NULL, b, 2, NOW);
    assert_int_equal(b[0].weight, 1000);
    assert_int_equal(b[1].weight, 1000);
    assert_text(&b[0], "utilization=0");
    assert_text(&b[1], "rps=0");
    /* Denormals that would overflow the formula: unusable, not inf. */
    memset(b, 0, sizeof b);
    rep(&b[0], 1e12, 5e-324, 0);
    rep(&b[1], 1e-320, 0.5, 1);
    a58->compute(NULL, b, 2, NOW);
    assert_int_equal(b[0].weight, 1000);
    assert_int_equal(b[1].weight, 1000);
    assert_text(&b[0], "not representable");
    assert_sane(b, 2);
    /* Extreme but valid: raw 1e224 next to raw 100. */
    memset(b, 0, sizeof b);
    rep(&b[0], 1e12, 1e-212, 0);
    rep(&b[1], 100, 1, 0);
    a58->compute(NULL, b, 2, NOW);
    assert_sane(b, 2);
    assert_true(b[0].weight > b[1].weight);
    /* 1000 stale/garbage/ok backends and garbage config: never NaN. */
    weights_config c;
    memset(&c, 0xff, sizeof c); /* NaNs and negative numbers everywhere */
    size_t n = 1000;
    weights_backend *many = calloc(n, sizeof *many);
    assert_non_null(many);
    uint64_t s = 3;
    const double pool[] = {0, 1e-320, 1e-9, 0.3, 1, 7, 250, 1e6, 1e12, 1e300, -2, NAN, INFINITY};
    for (int round = 0; round < 5; round++) {
        for (size_t i = 0; i < n; i++) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            uint32_t r = (uint32_t)(s >> 33);
            weights_input *in = &many[i].in;
            in->has_report = r & 1;
            in->cpu = pool[(r >> 1) % 13];
            in->app = pool[(r >> 5) % 13];
            in->rps = pool[(r >> 9) % 13];
            in->eps = pool[(r >> 13) % 13];
            in->report_ms = NOW - (int64_t)((r >> 17) % 20000);
            in->draining = (r >> 27) % 7 == 0;
            in->override_weight = (r >> 30) == 3 ? r : 0;
            in->ramp_start_ms = (r >> 20) % 3 ? 0 : NOW - (int64_t)((r >> 22) % 30000) + 5000;
        }
        a58->compute(round % 2 ? &c : NULL, many, n, NOW + round * 700);
        assert_sane(many, n);
        weights_policy_equal.compute(&c, many, n, NOW);
        assert_sane(many, n);
    }
    free(many);
    /* Nothing to do. */
    a58->compute(NULL, NULL, 5, NOW);
    a58->compute(NULL, b, 0, NOW);
    weights_policy_equal.compute(NULL, NULL, 3, NOW);
}

/* --- config, policies, significance ---------------------------------------- */

static void config(void **st)
{
    (void)st;
    weights_config c = cfg_default();
    assert_true(c.error_penalty == 1.0);
    assert_true(c.clamp_low == 0.1 && c.clamp_high == 10.0);
    assert_true(c.smoothing == 2000.0);
    assert_true(c.slow_start_ms == 10000 && c.slow_start_min == 0.10);
    assert_true(c.slow_start_aggression == 1.0);
    assert_true(c.expire_ms == 10000);
    assert_true(c.change_threshold == 0.10);
    const char *why = "x";
    assert_int_equal(weights_config_check(&c, &why), LOOKASIDE_OK);
    assert_null(why);
    assert_int_equal(weights_config_check(NULL, &why), LOOKASIDE_EINVAL);

    struct { double *d; int64_t *i; double bad; const char *field; } cases[] = {
        {&c.error_penalty, NULL, NAN, "error_penalty"},
        {&c.error_penalty, NULL, -1, "error_penalty"},
        {&c.clamp_low, NULL, 1.5, "clamp_low"},
        {&c.clamp_high, NULL, 0.5, "clamp_high"},
        {&c.clamp_high, NULL, INFINITY, "clamp_high"},
        {&c.smoothing, NULL, -1, "smoothing"},
        {NULL, &c.slow_start_ms, -1, "slow_start_ms"},
        {&c.slow_start_min, NULL, 2, "slow_start_min"},
        {&c.slow_start_aggression, NULL, 0, "slow_start_aggression"},
        {NULL, &c.expire_ms, 0, "expire_ms"},
        {&c.change_threshold, NULL, NAN, "change_threshold"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        c = cfg_default();
        /* the pointers were taken from c, which is reset in place */
        if (cases[k].d)
            *cases[k].d = cases[k].bad;
        else
            *cases[k].i = (int64_t)cases[k].bad;
        assert_int_equal(weights_config_check(&c, &why), LOOKASIDE_EINVAL);
        assert_non_null(why);
        if (!strstr(why, cases[k].field))
            fail_msg("case %zu: \"%s\" does not name %s", k, why, cases[k].field);
        /* compute() falls back to the default for that field. */
        weights_backend b[2];
        memset(b, 0, sizeof b);
        rep(&b[0], 100, 0.5, 0);
        rep(&b[1], 100, 1.0, 0);
        a58->compute(&c, b, 2, NOW);
        assert_int_equal(b[0].weight, 1333);
        assert_int_equal(b[1].weight, 667);
    }
    weights_config_default(NULL); /* no crash */
}

static void equal_policy(void **st)
{
    (void)st;
    weights_backend b[4];
    memset(b, 0, sizeof b);
    rep(&b[0], 100, 0.5, 0);
    rep(&b[1], 1e9, 0.01, 0);
    b[2].in.draining = true;
    b[3].in.override_weight = 42;
    b[3].in.ramp_start_ms = NOW;
    weights_policy_equal.compute(NULL, b, 4, NOW);
    assert_int_equal(b[0].weight, WEIGHTS_SCALE);
    assert_int_equal(b[1].weight, WEIGHTS_SCALE);
    assert_int_equal(b[2].weight, 0);
    assert_int_equal(b[3].weight, 42);
    assert_text(&b[0], "equal");
    assert_text(&b[2], "draining");
    assert_sane(b, 4);
}

static void policy_find(void **st)
{
    (void)st;
    assert_ptr_equal(weights_policy_find("a58"), &weights_policy_a58);
    assert_ptr_equal(weights_policy_find("equal"), &weights_policy_equal);
    assert_null(weights_policy_find("A58"));
    assert_null(weights_policy_find(""));
    assert_null(weights_policy_find("round_robin"));
    assert_null(weights_policy_find(NULL));
    assert_ptr_equal(weights_policy_at(0), &weights_policy_a58); /* the default */
    size_t k = 0;
    for (const struct weights_policy_ops *p; (p = weights_policy_at(k)) != NULL; k++) {
        assert_non_null(p->compute);
        assert_ptr_equal(weights_policy_find(p->name), p);
    }
    assert_int_equal(k, 2);
}

static void significant(void **st)
{
    (void)st;
    weights_config c = cfg_default(); /* 10% */
    const uint32_t base[] = {1000, 1000, 500};
    assert_false(weights_significant(&c, base, base, 3));
    assert_false(weights_significant(&c, base, (uint32_t[]){1050, 950, 540}, 3));
    assert_false(weights_significant(&c, base, (uint32_t[]){1100, 900, 550}, 3)); /* exactly 10% */
    assert_true(weights_significant(&c, base, (uint32_t[]){1101, 1000, 500}, 3));
    assert_true(weights_significant(&c, base, (uint32_t[]){1000, 1000, 449}, 3));
    assert_true(weights_significant(&c, base, (uint32_t[]){1000, 0, 500}, 3));   /* drained */
    assert_true(weights_significant(&c, (uint32_t[]){0}, (uint32_t[]){1}, 1));   /* undrained */
    assert_false(weights_significant(&c, base, (uint32_t[]){0}, 0));
    assert_true(weights_significant(NULL, base, (uint32_t[]){2000, 1000, 500}, 3));
    assert_true(weights_significant(&c, NULL, base, 3));
    assert_true(weights_significant(&c, (uint32_t[]){UINT32_MAX}, (uint32_t[]){1}, 1));
    c.change_threshold = 0;
    assert_true(weights_significant(&c, base, (uint32_t[]){1001, 1000, 500}, 3));
    c.change_threshold = NAN; /* falls back to 10% */
    assert_false(weights_significant(&c, base, (uint32_t[]){1001, 1000, 500}, 3));
    /* Slow drift adds up against the last published weights. */
    c = cfg_default();
    uint32_t pub[1] = {1000}, cur[1] = {1000};
    int pushes = 0;
    for (int s = 0; s < 30; s++) {
        cur[0] += 10; /* 1% per step */
        if (weights_significant(&c, pub, cur, 1)) {
            pub[0] = cur[0];
            pushes++;
        }
    }
    assert_int_equal(pushes, 2); /* at 1110 and at 1230 */
}

static void explain_text(void **st)
{
    (void)st;
    /* Every step at once, with long numbers: still one line that fits. */
    weights_config c = cfg_default();
    c.smoothing = 1234.5678;
    weights_backend b[3];
    memset(b, 0, sizeof b);
    rep(&b[0], 123456.789, 0.000123456, 98765.4321);
    b[0].in.app = 0.000987654;
    rep(&b[1], 1.23456789, 0.987654321, 0.00123);
    rep(&b[2], 99999.9999, 0.5, 0);
    for (int i = 0; i < 3; i++) {
        b[i].in.ramp_start_ms = NOW - 1234;
        b[i].st.primed = true;
        b[i].st.smoothed = 0.123456789;
        b[i].st.last_ms = NOW - 777;
    }
    b[1].in.override_weight = 999999;
    a58->compute(&c, b, 3, NOW);
    for (int i = 0; i < 3; i++) {
        size_t len = strlen(b[i].why.text);
        if (len >= sizeof b[i].why.text - 1 || strstr(b[i].why.text, "..."))
            fail_msg("truncated (%zu): %s", len, b[i].why.text);
        assert_text(&b[i], "raw=");
        assert_text(&b[i], "smoothed");
        assert_text(&b[i], "slow start");
    }
    assert_text(&b[1], "clamped to");
    assert_text(&b[1], "override -> 999999");
    assert_sane(b, 3);
    /* Print one so a reader of the test log sees what the admin API shows. */
    printf("example: %s\n", b[0].why.text);
    fflush(stdout);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(two_to_one),   cmocka_unit_test(formula_errors_app),
        cmocka_unit_test(mean_substitution), cmocka_unit_test(clamp_band),
        cmocka_unit_test(smoothing),    cmocka_unit_test(slow_start),
        cmocka_unit_test(drain),        cmocka_unit_test(override),
        cmocka_unit_test(expiry),       cmocka_unit_test(bad_inputs),
        cmocka_unit_test(config),       cmocka_unit_test(equal_policy),
        cmocka_unit_test(policy_find),  cmocka_unit_test(significant),
        cmocka_unit_test(explain_text),
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
    return cmocka_run_group_tests_name("weights", tests, NULL, NULL);
}
