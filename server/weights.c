/* weights.c - weight policies: "a58" (default) and "equal".
 *
 * The a58 pipeline for one service, in order:
 *   1. classify: a serving backend's report is usable when it exists, is not
 *      older than expire_ms, and every number is finite, >= 0, <= the input
 *      cap, with rps > 0 and util > 0 (gRFC A58 treats those as "no weight");
 *   2. raw = rps / (util + eps/rps * error_penalty);
 *   3. band: clamp raw into [clamp_low, clamp_high] x the mean raw weight of
 *      usable serving backends;
 *   4. smooth the clamped value divided by that mean (1.0 = average), so a
 *      service-wide shift in load does not look like a change of balance;
 *   5. normalise by the mean of the smoothed values; a backend without a
 *      usable report gets exactly the mean;
 *   6. slow start multiplies, override replaces, draining zeroes;
 *   7. scale to WEIGHTS_SCALE, round, clamp to [1, WEIGHTS_MAX].
 * Draining backends take no part in any mean: they get no new traffic, so
 * their rps falls and says nothing about capacity. Overridden backends do
 * take part (their reports are real capacity data); the override replaces
 * only their output, so removing it is seamless. */
#include "weights.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* Defaults, with the reasons.
 *
 * error_penalty 1.0: A58's default, so weights compare with gRPC's WRR.
 *
 * clamp 0.1x..10x: gRPC C core uses 0.01x..10x. Our floor is 0.1x because a
 * starved backend serves ~0 rps, its report becomes unusable (rps == 0), it
 * jumps back to the mean and is flooded: keeping at least 10% of the mean
 * keeps its rps meaningful and the loop stable. 10x is the same cap as gRPC.
 *
 * smoothing: half-life 2000 ms. Reports arrive about every second; two
 * reports' worth of half-life removes most sample noise (a single outlier
 * moves the weight by < 30%), yet a real change reaches 90% within ~7 s.
 * The formula rps/util estimates capacity, which does not depend on the
 * traffic we send, so lag does not cause oscillation; it only delays.
 *
 * slow_start 10 s from 10%, linear: a new backend gets traffic in its first
 * second (10% of the mean at once, compare DNS + MaxConnectionAge where it
 * waits minutes) while caches and JITs warm. 10 s matches A58's blackout
 * period, so a backend reaches full share when gRPC's WRR would start to
 * trust its reports, and it spans five smoothing half-lives, so its first
 * noisy cold-start reports have settled before it carries a full share.
 *
 * expire 10 s: A58 uses 3 min for 30 s-ish ORCA intervals. Our reports come
 * every ~1 s, so a 10 s old figure no longer describes the backend; 10
 * intervals means one late or lost report never flips a weight. Eviction
 * (3 missed intervals) normally removes a silent backend first; expiry is
 * the second line for longer report intervals and restored state. Callers
 * that raise the report interval must keep expire_ms >= several intervals.
 *
 * change_threshold 10%: pushing a list costs a message to every watcher
 * (thousands) and a pick-table rebuild in each client. Smoothed weights still
 * wander a few per cent on noise, and a backend 10% over its ideal share is
 * well inside normal headroom; the grpclb sequence itself only matches
 * shares to a few per cent. Below 10% a push buys nothing. */
static const weights_config defaults = {
    .error_penalty = 1.0,
    .clamp_low = 0.1,
    .clamp_high = 10.0,
    .smoothing = 2000.0,
    .slow_start_ms = 10000,
    .slow_start_min = 0.10,
    .slow_start_aggression = 1.0,
    .expire_ms = 10000,
    .change_threshold = 0.10,
};

void weights_config_default(weights_config *c)
{
    if (c)
        *c = defaults;
}

/* Upper bounds that keep every derived number finite. */
#define CFG_FACTOR_MAX 1e6
#define CFG_MS_MAX ((int64_t)1000 * 86400 * 365) /* a year */

static bool in_range(double v, double lo, double hi)
{
    return isfinite(v) && v >= lo && v <= hi; /* false for NaN */
}

/* Returns the name of the first bad field, or NULL when all are fine. */
static const char *cfg_bad_field(const weights_config *c)
{
    if (!in_range(c->error_penalty, 0, CFG_FACTOR_MAX))
        return "error_penalty must be finite and in [0, 1e6]";
    if (!in_range(c->clamp_low, 0, 1))
        return "clamp_low must be in [0, 1]";
    if (!in_range(c->clamp_high, 1, CFG_FACTOR_MAX))
        return "clamp_high must be in [1, 1e6]";
    if (!in_range(c->smoothing, 0, (double)CFG_MS_MAX))
        return "smoothing (half-life ms) must be in [0, 1 year]";
    if (c->slow_start_ms < 0 || c->slow_start_ms > CFG_MS_MAX)
        return "slow_start_ms must be in [0, 1 year]";
    if (!in_range(c->slow_start_min, 0, 1))
        return "slow_start_min must be in [0, 1]";
    if (!in_range(c->slow_start_aggression, 1e-3, 1e3))
        return "slow_start_aggression must be in [0.001, 1000]";
    if (c->expire_ms <= 0 || c->expire_ms > CFG_MS_MAX)
        return "expire_ms must be in [1, 1 year]";
    if (!in_range(c->change_threshold, 0, CFG_FACTOR_MAX))
        return "change_threshold must be in [0, 1e6]";
    return NULL;
}

lookaside_status weights_config_check(const weights_config *c, const char **why)
{
    const char *bad = c ? cfg_bad_field(c) : "no configuration";
    if (why)
        *why = bad;
    return bad ? LOOKASIDE_EINVAL : LOOKASIDE_OK;
}

/* A copy of cfg in which every bad field is replaced by its default, so the
 * math below can rely on the ranges cfg_bad_field() enforces. */
static weights_config cfg_sane(const weights_config *in)
{
    weights_config c = in ? *in : defaults;
    if (!in_range(c.error_penalty, 0, CFG_FACTOR_MAX))
        c.error_penalty = defaults.error_penalty;
    if (!in_range(c.clamp_low, 0, 1))
        c.clamp_low = defaults.clamp_low;
    if (!in_range(c.clamp_high, 1, CFG_FACTOR_MAX))
        c.clamp_high = defaults.clamp_high;
    if (!in_range(c.smoothing, 0, (double)CFG_MS_MAX))
        c.smoothing = defaults.smoothing;
    if (c.slow_start_ms < 0 || c.slow_start_ms > CFG_MS_MAX)
        c.slow_start_ms = defaults.slow_start_ms;
    if (!in_range(c.slow_start_min, 0, 1))
        c.slow_start_min = defaults.slow_start_min;
    if (!in_range(c.slow_start_aggression, 1e-3, 1e3))
        c.slow_start_aggression = defaults.slow_start_aggression;
    if (c.expire_ms <= 0 || c.expire_ms > CFG_MS_MAX)
        c.expire_ms = defaults.expire_ms;
    if (!in_range(c.change_threshold, 0, CFG_FACTOR_MAX))
        c.change_threshold = defaults.change_threshold;
    return c;
}

/* --- explanation text ---------------------------------------------------- */

/* Appends to a fixed buffer; on overflow the text ends with "..." so a
 * reader knows it was cut. */
typedef struct tbuf {
    char *p;
    size_t cap, len;
    bool full;
} tbuf;

static void tb_init(tbuf *t, char *p, size_t cap)
{
    t->p = p;
    t->cap = cap;
    t->len = 0;
    t->full = false;
    p[0] = '\0';
}

__attribute__((format(printf, 2, 3))) static void tb_add(tbuf *t, const char *fmt, ...)
{
    if (t->full)
        return;
    size_t room = t->cap - t->len;
    va_list ap;
    va_start(ap, fmt);
    int r = vsnprintf(t->p + t->len, room, fmt, ap);
    va_end(ap);
    if (r < 0) {
        t->p[t->len] = '\0';
        return;
    }
    if ((size_t)r >= room) {
        t->full = true;
        t->len = t->cap - 1;
        if (t->cap >= 4)
            memcpy(t->p + t->cap - 4, "...", 4);
        return;
    }
    t->len += (size_t)r;
}

/* --- shared output steps -------------------------------------------------- */

static uint32_t to_weight(double v)
{
    if (isnan(v))
        return WEIGHTS_SCALE; /* unreachable by construction; never emit garbage */
    if (!(v >= 1.0))
        return 1;
    if (v >= (double)WEIGHTS_MAX)
        return WEIGHTS_MAX;
    return (uint32_t)lround(v);
}

/* Applies override to a serving backend's computed weight and finishes the
 * text. Returns the final weight. */
static uint32_t finish_serving(weights_backend *bk, uint32_t computed, tbuf *t)
{
    uint32_t ov = bk->in.override_weight;
    if (ov > 0) {
        uint32_t w = ov > WEIGHTS_MAX ? WEIGHTS_MAX : ov;
        tb_add(t, "; computed %u, override -> %u", computed, w);
        return w;
    }
    tb_add(t, " -> %u", computed);
    return computed;
}

static void explain_reset(weights_explain *why)
{
    memset(why, 0, sizeof *why);
    why->slow_start = 1.0;
}

static void set_draining(weights_backend *bk, const char *policy)
{
    tbuf t;
    explain_reset(&bk->why);
    tb_init(&t, bk->why.text, sizeof bk->why.text);
    tb_add(&t, "%s: draining -> 0 (no new traffic)%s", policy,
           bk->in.override_weight ? "; override ignored while draining" : "");
    bk->weight = 0;
}

/* --- a58 ------------------------------------------------------------------ */

static const char reason_stale[] = "report stale";

/* Why a report cannot be used, or NULL when it can; sets *raw when usable.
 * Every rejected case is one A58 (or common sense) treats as "no weight". */
static const char *a58_classify(const weights_config *c, const weights_input *in, int64_t now_ms,
                                weights_explain *why, double *raw)
{
    if (!in->has_report)
        return "no report yet";
    double age = (double)now_ms - (double)in->report_ms; /* double: no overflow */
    if (age > (double)c->expire_ms)
        return reason_stale;
    const double v[4] = {in->cpu, in->app, in->rps, in->eps};
    for (int i = 0; i < 4; i++) {
        if (isnan(v[i]))
            return "NaN in report";
        if (isinf(v[i]))
            return "infinite value in report";
        if (v[i] < 0)
            return "negative value in report";
        if (v[i] > WEIGHTS_INPUT_MAX)
            return "value in report out of range";
    }
    why->util = in->app > 0 ? in->app : in->cpu;
    why->rps = in->rps;
    why->eps = in->eps;
    if (in->rps == 0)
        return "rps=0";
    if (why->util == 0)
        return "utilization=0";
    double denom = why->util + in->eps / in->rps * c->error_penalty;
    double r = in->rps / denom;
    /* Denormal utilisations or rps can still overflow or underflow. */
    if (!isfinite(denom) || !isfinite(r) || !(r > 0))
        return "weight not representable";
    *raw = r;
    return NULL;
}

static void a58_compute(const weights_config *cfg_in, weights_backend *b, size_t n, int64_t now_ms)
{
    if (!b || n == 0)
        return;
    const weights_config c = cfg_sane(cfg_in);
    size_t serving = 0, usable = 0;
    double mean_raw = 0;

    /* Pass 1: classify; mean of usable raw weights (incremental, so no sum
     * can overflow). */
    for (size_t i = 0; i < n; i++) {
        weights_backend *bk = &b[i];
        if (bk->in.draining)
            continue;
        serving++;
        explain_reset(&bk->why);
        double raw;
        if (a58_classify(&c, &bk->in, now_ms, &bk->why, &raw) == NULL) {
            bk->why.usable = true;
            bk->why.raw = raw;
            usable++;
            mean_raw += (raw - mean_raw) / (double)usable;
        }
    }
    double lo = c.clamp_low * mean_raw, hi = c.clamp_high * mean_raw; /* hi may be inf: fine */

    /* Pass 2: band and smoothing for usable backends. */
    double mean_s = 0;
    size_t ns = 0;
    for (size_t i = 0; i < n; i++) {
        weights_backend *bk = &b[i];
        if (bk->in.draining || !bk->why.usable)
            continue;
        weights_explain *why = &bk->why;
        double raw = why->raw;
        why->mean = mean_raw;
        why->clamped = raw < lo ? lo : raw > hi ? hi : raw;
        double rel = why->clamped / mean_raw; /* mean_raw >= raw/usable > 0 */
        weights_state *st = &bk->st;
        bool primed = st->primed && isfinite(st->smoothed) && st->smoothed >= 0;
        if (!primed || c.smoothing <= 0) {
            st->smoothed = rel;
            st->primed = true;
            st->last_ms = now_ms;
            why->alpha = 1.0;
        } else {
            /* Time-weighted: feeding the same sample at several computes
             * equals feeding it once over the whole interval. */
            double dt = (double)now_ms - (double)st->last_ms;
            why->alpha = 0;
            if (dt > 0) {
                why->alpha = 1.0 - exp2(-dt / c.smoothing);
                st->smoothed += why->alpha * (rel - st->smoothed);
                st->last_ms = now_ms;
            }
        }
        why->smoothed = st->smoothed;
        ns++;
        mean_s += (st->smoothed - mean_s) / (double)ns;
    }
    if (!(mean_s > 0) || !isfinite(mean_s))
        mean_s = 1.0;

    /* Pass 3: normalise, substitute, slow start, override, drain, text. */
    for (size_t i = 0; i < n; i++) {
        weights_backend *bk = &b[i];
        if (bk->in.draining) {
            set_draining(bk, "a58");
            continue;
        }
        weights_explain *why = &bk->why;
        tbuf t;
        tb_init(&t, why->text, sizeof why->text);
        double x;
        if (why->usable) {
            const weights_input *in = &bk->in;
            tb_add(&t,
                   "a58: rps=%.4g util=%.4g(%s) eps=%.4g age=%.0fms; "
                   "raw=rps/(util+eps/rps*%.3g)=%.4g",
                   why->rps, why->util, in->app > 0 ? "app" : "cpu", why->eps,
                   (double)now_ms - (double)in->report_ms, c.error_penalty, why->raw);
            if (why->clamped != why->raw)
                tb_add(&t, "; clamped to %.4g (band %.3g-%.3gx mean %.4g)", why->clamped,
                       c.clamp_low, c.clamp_high, why->mean);
            else
                tb_add(&t, "; mean %.4g, in band", why->mean);
            double rel = why->clamped / why->mean;
            if (c.smoothing <= 0)
                tb_add(&t, "; rel %.4g, unsmoothed", rel);
            else if (why->alpha == 1.0)
                tb_add(&t, "; rel %.4g primes smoothing", rel);
            else
                tb_add(&t, "; rel %.4g, smoothed %.4g (a=%.3g, half-life %.0fms)", rel,
                       why->smoothed, why->alpha, c.smoothing);
            x = why->smoothed / mean_s;
            if (ns > 1)
                tb_add(&t, "; /mean %.4g = %.4g", mean_s, x);
        } else {
            /* The reason is re-derived rather than stored per backend. */
            double raw;
            const char *reason = a58_classify(&c, &bk->in, now_ms, why, &raw);
            if (reason == reason_stale)
                tb_add(&t, "a58: report stale (%.0fms > %lldms)",
                       (double)now_ms - (double)bk->in.report_ms, (long long)c.expire_ms);
            else
                tb_add(&t, "a58: %s", reason ? reason : "unusable report");
            if (usable > 0)
                tb_add(&t, "; mean weight of %zu usable", usable);
            else
                tb_add(&t, "; none of %zu serving usable, all equal", serving);
            x = 1.0;
        }

        double f = 1.0;
        if (c.slow_start_ms > 0 && bk->in.ramp_start_ms > 0) {
            double el = (double)now_ms - (double)bk->in.ramp_start_ms;
            double dur = (double)c.slow_start_ms;
            if (el < dur) {
                double frac = el > 0 ? el / dur : 0;
                f = c.slow_start_aggression == 1.0 ? frac
                                                   : pow(frac, 1.0 / c.slow_start_aggression);
                if (!(f >= c.slow_start_min))
                    f = c.slow_start_min;
                tb_add(&t, "; slow start x%.3g (%.0f/%lldms)", f, el > 0 ? el : 0,
                       (long long)c.slow_start_ms);
            }
        }
        why->slow_start = f;
        bk->weight = finish_serving(bk, to_weight(x * f * (double)WEIGHTS_SCALE), &t);
    }
}

const struct weights_policy_ops weights_policy_a58 = {
    .name = "a58",
    .compute = a58_compute,
};

/* --- equal ---------------------------------------------------------------- */

static void equal_compute(const weights_config *cfg, weights_backend *b, size_t n, int64_t now_ms)
{
    (void)cfg;
    (void)now_ms;
    if (!b)
        return;
    for (size_t i = 0; i < n; i++) {
        weights_backend *bk = &b[i];
        if (bk->in.draining) {
            set_draining(bk, "equal");
            continue;
        }
        tbuf t;
        explain_reset(&bk->why);
        tb_init(&t, bk->why.text, sizeof bk->why.text);
        tb_add(&t, "equal: serving, load ignored");
        bk->weight = finish_serving(bk, WEIGHTS_SCALE, &t);
    }
}

const struct weights_policy_ops weights_policy_equal = {
    .name = "equal",
    .compute = equal_compute,
};

/* --- registry ------------------------------------------------------------- */

static const struct weights_policy_ops *const policies[] = {
    &weights_policy_a58,
    &weights_policy_equal,
};

const struct weights_policy_ops *weights_policy_at(size_t i)
{
    return i < sizeof policies / sizeof policies[0] ? policies[i] : NULL;
}

const struct weights_policy_ops *weights_policy_find(const char *name)
{
    if (!name)
        return NULL;
    for (size_t i = 0; i < sizeof policies / sizeof policies[0]; i++)
        if (strcmp(policies[i]->name, name) == 0)
            return policies[i];
    return NULL;
}

/* --- change detection ----------------------------------------------------- */

bool weights_significant(const weights_config *cfg, const uint32_t *old_w, const uint32_t *new_w,
                         size_t n)
{
    if (!old_w || !new_w)
        return n > 0;
    const weights_config c = cfg_sane(cfg);
    for (size_t i = 0; i < n; i++) {
        uint32_t o = old_w[i], w = new_w[i];
        if (o == w)
            continue;
        if (o == 0 || w == 0)
            return true;
        double d = o > w ? (double)(o - w) : (double)(w - o);
        if (d > c.change_threshold * (double)o)
            return true;
    }
    return false;
}
